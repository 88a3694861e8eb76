// A portfolio written straight into the tables, for the what-if benchmark and the tests of
// what-if over many versions (the registry's own write path is tested and measured elsewhere).
import type { Insertable, Kysely } from 'kysely';
import type { Database } from '../../src/storage/database.js';
import type { DB } from '../../src/storage/schema.js';

const CARD = JSON.stringify({ intendedUse: 'scoring', limitations: 'EU only', trainingData: 'tx' });

export async function insertMany<T extends keyof DB>(
  db: Kysely<DB>,
  table: T,
  rows: Insertable<DB[T]>[],
) {
  for (let i = 0; i < rows.length; i += 500)
    await db
      .insertInto(table)
      .values(rows.slice(i, i + 500) as never)
      .execute();
}

/**
 * Seeds `models` models of `perModel` versions each, straight into the tables (the registry's
 * own write path is measured elsewhere): every version with a succeeded scan, every tenth with
 * a critical finding. Returns the model names.
 */
export async function seedPortfolio(
  database: Database,
  models: number,
  perModel: number,
  prefix = 'm',
) {
  const db = database.db;
  const at = new Date().toISOString();
  const names = Array.from({ length: models }, (_, i) => `${prefix}${i}`);
  await insertMany(
    db,
    'models',
    names.map((name, i) => ({
      name,
      owner_team: 'fraud',
      risk_tier: i % 2 ? 'limited' : 'high',
      description: '',
      intended_use: '',
      tags: '[]',
      created_at: at,
      created_by: 'bench',
      created_credential: 'tok',
      updated_at: at,
      updated_by: 'bench',
    })),
  );
  const ids = await db
    .selectFrom('models')
    .select(['id', 'name'])
    .where('name', 'like', `${prefix}%`)
    .execute();
  const versions: Insertable<DB['versions']>[] = [];
  for (const m of ids)
    for (let n = 1; n <= perModel; n++)
      versions.push({
        model_id: m.id,
        number: n,
        digest: `sha256:${(m.id * 100_000 + n).toString(16).padStart(64, '0')}`,
        total_size: 4,
        file_count: 1,
        source_uri: null,
        author: 'ann',
        created_credential: 'tok',
        card_markdown: '',
        card_fields: CARD,
        tags: '[]',
        description: '',
        created_at: at,
        updated_at: at,
        updated_by: 'ann',
      });
  await insertMany(db, 'versions', versions);
  const vrows = await db
    .selectFrom('versions')
    .innerJoin('models', 'models.id', 'versions.model_id')
    .select(['versions.id', 'versions.number'])
    .where('models.name', 'like', `${prefix}%`)
    .execute();
  await insertMany(
    db,
    'evaluations',
    vrows.map((v) => ({
      id: `ev_${v.id.toString(16).padStart(16, '0')}`,
      version_id: v.id,
      evaluator_id: 'artifact-scan',
      evaluator_version: '1',
      config: '{}',
      status: 'succeeded' as const,
      requested_by: 'modelgate',
      credential_id: 'system',
      created_at: at,
      started_at: at,
      finished_at: at,
      progress: 1,
      metrics: '{"files":1}',
      error: null,
      attempts: 1,
      lease_owner: null,
      lease_expires_at: null,
    })),
  );
  await insertMany(
    db,
    'findings',
    vrows
      .filter((v) => v.id % 10 === 0)
      .map((v) => ({
        evaluation_id: `ev_${v.id.toString(16).padStart(16, '0')}`,
        version_id: v.id,
        rule_id: 'PICKLE-GLOBAL-CRITICAL',
        severity: 'critical',
        title: 'pickle imports os.system',
        file: 'model.pkl',
        member: null,
        byte_offset: 2,
        evidence: 'os system',
        refs: '[]',
        status: 'open',
        created_at: at,
      })),
  );
  return { names, versions: vrows };
}
