import type { Kysely, Selectable } from 'kysely';
import { ModelgateError } from '../core/errors.js';
import type {
  IdentityInfo,
  IdentityStore,
  NewToken,
  TokenInfo,
} from '../identity/identity-store.js';
import type { NewIdentity } from '../registry/registry-store.js';
import type { Database } from './database.js';
import type { DB, IdentitiesTable, TokensTable } from './schema.js';

/** An identity's roles and teams, each sorted. */
export async function grantsOf(
  db: Kysely<DB>,
  identityId: number,
): Promise<{ roles: string[]; teams: string[] }> {
  const [roles, teams] = await Promise.all([
    db
      .selectFrom('identity_roles')
      .select('role')
      .where('identity_id', '=', identityId)
      .orderBy('role')
      .execute(),
    db
      .selectFrom('team_members')
      .select('team')
      .where('identity_id', '=', identityId)
      .orderBy('team')
      .execute(),
  ]);
  return { roles: roles.map((r) => r.role), teams: teams.map((t) => t.team) };
}

/** IdentityStore on SQLite or PostgreSQL through Kysely. */
export class KyselyIdentityStore implements IdentityStore {
  private readonly db: Kysely<DB>;

  constructor(
    private readonly database: Database,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.db = database.db;
  }

  private async info(row: Selectable<IdentitiesTable>): Promise<IdentityInfo> {
    const { roles, teams } = await grantsOf(this.db, row.id);
    return {
      name: row.name,
      kind: row.kind,
      roles,
      teams,
      owner: row.owner,
      purpose: row.purpose,
      createdAt: row.created_at,
    };
  }

  private async row(name: string): Promise<Selectable<IdentitiesTable>> {
    const row = await this.db
      .selectFrom('identities')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirst();
    if (!row) throw new ModelgateError('IDENTITY_NOT_FOUND', `no identity named ${name}`);
    return row;
  }

  async createIdentity(
    i: NewIdentity & { owner?: string; purpose?: string },
  ): Promise<IdentityInfo> {
    try {
      await this.db.transaction().execute(async (trx) => {
        const { id } = await trx
          .insertInto('identities')
          .values({
            kind: i.kind,
            name: i.name,
            created_at: this.now().toISOString(),
            owner: i.owner ?? null,
            purpose: i.purpose ?? null,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        for (const role of new Set(i.roles ?? []))
          await trx.insertInto('identity_roles').values({ identity_id: id, role }).execute();
        for (const team of new Set(i.teams ?? []))
          await trx.insertInto('team_members').values({ identity_id: id, team }).execute();
      });
    } catch (e) {
      if (this.database.caps.isUniqueViolation(e))
        throw new ModelgateError('IDENTITY_EXISTS', `an identity named ${i.name} already exists`);
      throw e;
    }
    return this.getIdentity(i.name);
  }

  async getIdentity(name: string): Promise<IdentityInfo> {
    return this.info(await this.row(name));
  }

  async listIdentities(): Promise<IdentityInfo[]> {
    const rows = await this.db.selectFrom('identities').selectAll().orderBy('name').execute();
    return Promise.all(rows.map((r) => this.info(r)));
  }

  async setGrants(
    name: string,
    grants: { roles?: string[]; teams?: string[] },
  ): Promise<IdentityInfo> {
    const { id } = await this.row(name);
    await this.db.transaction().execute(async (trx) => {
      if (grants.roles) {
        await trx.deleteFrom('identity_roles').where('identity_id', '=', id).execute();
        for (const role of new Set(grants.roles))
          await trx.insertInto('identity_roles').values({ identity_id: id, role }).execute();
      }
      if (grants.teams) {
        await trx.deleteFrom('team_members').where('identity_id', '=', id).execute();
        for (const team of new Set(grants.teams))
          await trx.insertInto('team_members').values({ identity_id: id, team }).execute();
      }
    });
    return this.getIdentity(name);
  }

  async addToken(identity: string, t: NewToken): Promise<TokenInfo> {
    const { id } = await this.row(identity);
    await this.db
      .insertInto('tokens')
      .values({
        id: t.id,
        identity_id: id,
        token_hash: t.hash,
        name: t.name,
        created_at: this.now().toISOString(),
        expires_at: t.expiresAt ?? null,
        rotated_from: t.rotatedFrom ?? null,
        scopes: t.scopes ? JSON.stringify(t.scopes) : null,
      })
      .execute();
    return this.getToken(t.id);
  }

  private tokens() {
    return this.db
      .selectFrom('tokens')
      .innerJoin('identities', 'identities.id', 'tokens.identity_id')
      .select([
        'tokens.id',
        'tokens.name',
        'tokens.created_at',
        'tokens.last_used_at',
        'tokens.last_used_from',
        'tokens.expires_at',
        'tokens.revoked_at',
        'tokens.rotated_from',
        'tokens.scopes',
        'tokens.token_hash',
        'identities.name as identity',
      ]);
  }

  private static token(
    r: Omit<Selectable<TokensTable>, 'identity_id'> & { identity: string },
  ): TokenInfo {
    return {
      id: r.id,
      identity: r.identity,
      name: r.name,
      createdAt: r.created_at,
      lastUsedAt: r.last_used_at,
      lastUsedFrom: r.last_used_from,
      expiresAt: r.expires_at,
      revokedAt: r.revoked_at,
      rotatedFrom: r.rotated_from,
      scopes: r.scopes === null ? null : (JSON.parse(r.scopes) as string[]),
    };
  }

  async listTokens(identity: string): Promise<TokenInfo[]> {
    await this.row(identity);
    const rows = await this.tokens()
      .where('identities.name', '=', identity)
      .orderBy('tokens.created_at')
      .execute();
    return rows.map((r) => KyselyIdentityStore.token(r));
  }

  private async tokenRow(id: string) {
    const r = await this.tokens().where('tokens.id', '=', id).executeTakeFirst();
    if (!r) throw new ModelgateError('TOKEN_NOT_FOUND', `no token with id ${id}`);
    return r;
  }

  async getToken(id: string): Promise<TokenInfo> {
    return KyselyIdentityStore.token(await this.tokenRow(id));
  }

  async revokeToken(id: string): Promise<string> {
    const r = await this.tokenRow(id);
    await this.db
      .updateTable('tokens')
      .set({ revoked_at: this.now().toISOString() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .execute();
    return r.token_hash;
  }

  async expireTokenBy(id: string, at: string): Promise<string> {
    const r = await this.tokenRow(id);
    if (!r.expires_at || r.expires_at > at)
      await this.db.updateTable('tokens').set({ expires_at: at }).where('id', '=', id).execute();
    return r.token_hash;
  }
}
