import { createHash } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import { canonicalize } from '../audit/canonical-json.js';
import { subjects } from '../audit/subjects.js';
import type { Actor } from '../core/types.js';
import type { GatePolicyStore, PublishedPolicy } from '../policy/gates/gate-policy-store.js';
import type { PolicyDocument } from '../policy/gates/policy-document.js';
import { appendAudit } from './audit-append.js';
import type { Database } from './database.js';
import type { DB, GatePoliciesTable } from './schema.js';

const published = (r: Selectable<GatePoliciesTable>): PublishedPolicy => ({
  name: r.name,
  version: Number(r.version),
  digest: r.digest,
  document: JSON.parse(r.document) as PolicyDocument,
  source: r.source,
  publishedBy: r.published_by,
  publishedAt: r.published_at,
});

/** The latest version of every gate policy, by name (inside a caller's transaction too). */
export function latestPolicyRows(db: Kysely<DB>): Promise<Selectable<GatePoliciesTable>[]> {
  return db
    .selectFrom('gate_policies as g')
    .selectAll('g')
    .where(({ eb, selectFrom }) =>
      eb(
        'g.version',
        '=',
        selectFrom('gate_policies as h')
          .select((x) => x.fn.max('h.version').as('v'))
          .whereRef('h.name', '=', 'g.name'),
      ),
    )
    .orderBy('g.name')
    .execute();
}

/** GatePolicyStore on SQLite or PostgreSQL. */
export class KyselyGatePolicyStore implements GatePolicyStore {
  private readonly db: Kysely<DB>;

  constructor(
    private readonly database: Database,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.db = database.db;
  }

  async publish(
    p: { name: string; digest: string; document: PolicyDocument; source: string },
    by: Actor,
  ): Promise<PublishedPolicy & { created: boolean }> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.db.transaction().execute(async (trx) => {
          const same = await trx
            .selectFrom('gate_policies')
            .selectAll()
            .where('name', '=', p.name)
            .where('digest', '=', p.digest)
            .executeTakeFirst();
          if (same) return { ...published(same), created: false };
          const max = await trx
            .selectFrom('gate_policies')
            .select((eb) => eb.fn.max('version').as('max'))
            .where('name', '=', p.name)
            .executeTakeFirst();
          const at = this.now().toISOString();
          const row = {
            name: p.name,
            version: Number(max?.max ?? 0) + 1,
            digest: p.digest,
            document: canonicalize(p.document),
            source: p.source,
            published_by: by.identity,
            published_credential: by.credentialId,
            published_at: at,
          };
          await trx.insertInto('gate_policies').values(row).execute();
          await appendAudit(
            trx,
            {
              actor: by,
              action: 'gate.policy.publish',
              subject: subjects.gatePolicy(p.name, row.version),
              content: {
                name: p.name,
                version: row.version,
                digest: p.digest,
                document: p.document,
                // The text as sent, by digest: audit verify compares the row's source with it.
                sourceDigest: `sha256:${createHash('sha256').update(p.source).digest('hex')}`,
              },
            },
            at,
          );
          return { ...published(row), created: true };
        });
      } catch (e) {
        // Two publishers of one name at once: the version number or digest collides; the
        // retry sees the other's row.
        if (attempt < 3 && this.database.caps.isUniqueViolation(e)) continue;
        throw e;
      }
    }
  }

  async list(): Promise<PublishedPolicy[]> {
    return (await latestPolicyRows(this.db)).map(published);
  }

  async versions(name: string): Promise<PublishedPolicy[]> {
    const rows = await this.db
      .selectFrom('gate_policies')
      .selectAll()
      .where('name', '=', name)
      .orderBy('version')
      .execute();
    return rows.map(published);
  }
}
