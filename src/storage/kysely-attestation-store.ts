import type { Kysely } from 'kysely';
import { subjects } from '../audit/subjects.js';
import type { Actor } from '../core/types.js';
import type { AttestationStore, StoredAttestation } from '../evidence/attestation-store.js';
import { envelopeDigest } from '../evidence/attestor.js';
import type { EvidenceInput } from '../evidence/compliance.js';
import type { Envelope } from '../evidence/dsse.js';
import { storeAttestation } from './attestation-append.js';
import { appendAudit } from './audit-append.js';
import type { Database } from './database.js';
import type { DB } from './schema.js';

/** AttestationStore on SQLite or PostgreSQL. */
export class KyselyAttestationStore implements AttestationStore {
  private readonly db: Kysely<DB>;

  constructor(database: Database) {
    this.db = database.db;
  }

  async portfolio(alias: string): Promise<Omit<EvidenceInput, 'checkpoint'>[]> {
    const models = await this.db
      .selectFrom('models')
      .select(['id', 'name', 'owner_team', 'risk_tier'])
      .orderBy('name')
      .execute();
    const held = new Map(
      (
        await this.db
          .selectFrom('aliases')
          .innerJoin('versions', 'versions.id', 'aliases.version_id')
          .select(['aliases.model_id', 'versions.id'])
          .where('aliases.name', '=', alias)
          .execute()
      ).map((r) => [Number(r.model_id), Number(r.id)]),
    );
    const latest = await this.db
      .selectFrom('versions as v')
      .select(['v.model_id', 'v.id'])
      .where(({ eb, selectFrom }) =>
        eb(
          'v.number',
          '=',
          selectFrom('versions as w')
            .select((x) => x.fn.max('w.number').as('n'))
            .whereRef('w.model_id', '=', 'v.model_id'),
        ),
      )
      .execute();
    const chosen = new Map(latest.map((r) => [Number(r.model_id), Number(r.id)]));
    for (const [m, v] of held) chosen.set(m, v);
    const out: Omit<EvidenceInput, 'checkpoint'>[] = [];
    const byId = new Map(models.map((m) => [Number(m.id), m]));
    const ids = [...chosen.values()];
    for (let i = 0; i < ids.length; i += 500) {
      const page = ids.slice(i, i + 500);
      const [versions, atts, evals, edges] = await Promise.all([
        this.db
          .selectFrom('versions')
          .select(['id', 'model_id', 'number', 'digest', 'card_fields'])
          .where('id', 'in', page)
          .execute(),
        this.db
          .selectFrom('attestations as a')
          .innerJoin('versions as v', (j) =>
            j.onRef('v.model_id', '=', 'a.model_id').onRef('v.number', '=', 'a.version'),
          )
          .select([
            'v.id as versionId',
            'a.id',
            'a.kind',
            'a.ref',
            'a.predicate_type',
            'a.envelope',
          ])
          .where('v.id', 'in', page)
          .orderBy('a.id')
          .execute(),
        this.db
          .selectFrom('evaluations')
          .select(['id', 'version_id', 'evaluator_id'])
          .where('version_id', 'in', page)
          .execute(),
        this.db
          .selectFrom('lineage_edges')
          .select(['version_id', (x) => x.fn.countAll().as('n')])
          .where('version_id', 'in', page)
          .groupBy('version_id')
          .execute(),
      ]);
      const group = <T>(xs: T[], key: (x: T) => number) => {
        const g = new Map<number, T[]>();
        for (const x of xs) {
          const list = g.get(key(x));
          if (list) list.push(x);
          else g.set(key(x), [x]);
        }
        return g;
      };
      const attsOf = group(atts, (a) => Number(a.versionId));
      const evalsOf = group(evals, (e) => Number(e.version_id));
      const edgesOf = new Map(edges.map((e) => [Number(e.version_id), Number(e.n)]));
      for (const v of versions) {
        const m = byId.get(Number(v.model_id));
        if (!m) continue;
        const vid = Number(v.id);
        out.push({
          model: { name: m.name, ownerTeam: m.owner_team, riskTier: m.risk_tier },
          version: {
            number: Number(v.number),
            digest: v.digest,
            cardFields: JSON.parse(v.card_fields) as Record<string, unknown>,
          },
          attestations: (attsOf.get(vid) ?? []).map((a) => ({
            id: Number(a.id),
            kind: a.kind,
            ref: a.ref,
            predicateType: a.predicate_type,
            predicate: (
              JSON.parse(
                Buffer.from((JSON.parse(a.envelope) as Envelope).payload, 'base64').toString(),
              ) as { predicate: Record<string, unknown> }
            ).predicate,
          })),
          evaluators: Object.fromEntries(
            (evalsOf.get(vid) ?? []).map((e) => [e.id, e.evaluator_id]),
          ),
          lineageEdges: edgesOf.get(vid) ?? 0,
        });
      }
    }
    return out.sort((a, b) => (a.model.name < b.model.name ? -1 : 1));
  }

  async addExternal(
    e: {
      model: string;
      version: number;
      digest: string;
      predicateType: string;
      envelope: Envelope;
      signer: { name: string; keyid: string; pem: string };
    },
    by: Actor,
  ): Promise<StoredAttestation> {
    const at = new Date().toISOString();
    const ref = `${e.signer.name}/${e.signer.keyid}`;
    const stored = await this.db.transaction().execute(async (trx) => {
      const m = await trx
        .selectFrom('models')
        .select('id')
        .where('name', '=', e.model)
        .executeTakeFirstOrThrow();
      return storeAttestation(
        trx,
        {
          modelId: m.id,
          model: e.model,
          version: e.version,
          digest: e.digest,
          kind: 'external',
          ref,
          predicateType: e.predicateType,
        },
        { envelope: e.envelope, digest: envelopeDigest(e.envelope) },
        by,
        at,
        { signer: e.signer.keyid, evaluator: e.signer.name, signerKey: e.signer.pem },
      );
    });
    return {
      id: stored.id,
      model: e.model,
      version: e.version,
      kind: 'external',
      ref,
      predicateType: e.predicateType,
      envelope: e.envelope,
      envelopeDigest: stored.digest,
      createdAt: at,
    };
  }

  async recordExport(
    e: {
      model: string;
      version: number;
      digest: string;
      statement: string;
      attestations: string[];
    },
    by: Actor,
  ): Promise<void> {
    await this.db.transaction().execute((trx) =>
      appendAudit(
        trx,
        {
          actor: by,
          action: 'evidence.export',
          subject: subjects.exportOf(e.model, e.version),
          content: e,
        },
        new Date().toISOString(),
      ),
    );
  }

  async forVersion(model: string, version: number): Promise<StoredAttestation[]> {
    const rows = await this.db
      .selectFrom('attestations as a')
      .innerJoin('models as m', 'm.id', 'a.model_id')
      .selectAll('a')
      .select('m.name')
      .where('m.name', '=', model)
      .where('a.version', '=', version)
      .orderBy('a.id')
      .execute();
    return rows.map((r) => ({
      id: Number(r.id),
      model: r.name,
      version: Number(r.version),
      kind: r.kind,
      ref: r.ref,
      predicateType: r.predicate_type,
      envelope: JSON.parse(r.envelope) as Envelope,
      envelopeDigest: r.envelope_digest,
      createdAt: r.created_at,
    }));
  }
}
