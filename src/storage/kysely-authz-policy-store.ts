import type { Kysely, Selectable } from 'kysely';
import { subjects } from '../audit/subjects.js';
import { ModelgateError } from '../core/errors.js';
import type { Actor } from '../core/types.js';
import type { AuthzPolicyStore, StoredPolicy } from '../policy/authz/policy-set.js';
import { appendAudit } from './audit-append.js';
import type { Database } from './database.js';
import type { AuthzPoliciesTable, DB } from './schema.js';

const policy = (r: Selectable<AuthzPoliciesTable>): StoredPolicy => ({
  id: r.id,
  text: r.text,
  digest: r.digest,
  createdAt: r.created_at,
  createdBy: r.created_by,
});

/** AuthzPolicyStore on SQLite or PostgreSQL through Kysely. */
export class KyselyAuthzPolicyStore implements AuthzPolicyStore {
  private readonly db: Kysely<DB>;

  constructor(
    database: Database,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.db = database.db;
  }

  async list(): Promise<StoredPolicy[]> {
    const rows = await this.db.selectFrom('authz_policies').selectAll().orderBy('id').execute();
    return rows.map(policy);
  }

  async put(p: { id: string; text: string; digest: string }, by: Actor): Promise<StoredPolicy> {
    const row = {
      id: p.id,
      text: p.text,
      digest: p.digest,
      created_at: this.now().toISOString(),
      created_by: by.identity,
      created_credential: by.credentialId,
    };
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('authz_policies')
        .values(row)
        .onConflict((oc) =>
          oc.column('id').doUpdateSet({
            text: row.text,
            digest: row.digest,
            created_at: row.created_at,
            created_by: row.created_by,
            created_credential: row.created_credential,
          }),
        )
        .execute();
      await appendAudit(
        trx,
        {
          actor: by,
          action: 'authz.policy.put',
          subject: subjects.policy(p.id),
          content: { id: p.id, text: p.text, digest: p.digest },
        },
        row.created_at,
      );
    });
    return policy(row);
  }

  async remove(id: string, by: Actor): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const r = await trx.deleteFrom('authz_policies').where('id', '=', id).executeTakeFirst();
      if (Number(r.numDeletedRows) === 0)
        throw new ModelgateError('POLICY_NOT_FOUND', `no API policy with id ${id}`);
      await appendAudit(
        trx,
        { actor: by, action: 'authz.policy.remove', subject: subjects.policy(id), content: { id } },
        this.now().toISOString(),
      );
    });
  }
}
