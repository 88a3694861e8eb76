import type { Kysely } from 'kysely';
import { subjects } from '../audit/subjects.js';
import type { Actor } from '../core/types.js';
import type { AttestationStore, StoredAttestation } from '../evidence/attestation-store.js';
import type { Envelope } from '../evidence/dsse.js';
import { appendAudit } from './audit-append.js';
import type { Database } from './database.js';
import type { DB } from './schema.js';

/** AttestationStore on SQLite or PostgreSQL. */
export class KyselyAttestationStore implements AttestationStore {
  private readonly db: Kysely<DB>;

  constructor(database: Database) {
    this.db = database.db;
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
