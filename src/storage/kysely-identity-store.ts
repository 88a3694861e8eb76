import { createHash } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import { subjects } from '../audit/subjects.js';
import { ModelgateError } from '../core/errors.js';
import type { Actor } from '../core/types.js';
import type {
  GrantChange,
  IdentityInfo,
  IdentityInput,
  IdentityStore,
  NewToken,
  TeamInfo,
  TokenInfo,
} from '../identity/identity-store.js';
import { appendAudit } from './audit-append.js';
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
      expiresAt: row.expires_at,
      hasPassword: row.password_hash !== null,
      sso:
        row.sso_issuer !== null && row.sso_subject !== null
          ? { issuer: row.sso_issuer, subject: row.sso_subject }
          : null,
      createdAt: row.created_at,
      createdBy: row.created_by,
    };
  }

  private async row(name: string, db: Kysely<DB> = this.db): Promise<Selectable<IdentitiesTable>> {
    const row = await db
      .selectFrom('identities')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirst();
    if (!row) throw new ModelgateError('IDENTITY_NOT_FOUND', `no identity named ${name}`);
    return row;
  }

  // One time for a change, its grants and its audit event: audit verify compares them.
  private grant(by: Actor, at: string) {
    return {
      granted_by: by.identity,
      granted_credential: by.credentialId,
      granted_at: at,
    };
  }

  async createIdentity(i: IdentityInput, by: Actor): Promise<IdentityInfo> {
    try {
      await this.db.transaction().execute(async (trx) => {
        const at = this.now().toISOString();
        const { id } = await trx
          .insertInto('identities')
          .values({
            kind: i.kind,
            name: i.name,
            created_at: at,
            owner: i.owner ?? null,
            purpose: i.purpose ?? null,
            expires_at: i.expiresAt ?? null,
            password_hash: i.passwordHash ?? null,
            sso_issuer: i.sso?.issuer ?? null,
            sso_subject: i.sso?.subject ?? null,
            created_by: by.identity,
            created_credential: by.credentialId,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        for (const role of new Set(i.roles ?? []))
          await trx
            .insertInto('identity_roles')
            .values({ identity_id: id, role, ...this.grant(by, at) })
            .execute();
        for (const team of new Set(i.teams ?? []))
          await trx
            .insertInto('team_members')
            .values({ identity_id: id, team, ...this.grant(by, at) })
            .execute();
        await appendAudit(
          trx,
          {
            actor: by,
            action: 'identity.create',
            subject: subjects.identity(i.name),
            content: {
              name: i.name,
              kind: i.kind,
              roles: [...new Set(i.roles ?? [])].sort(),
              teams: [...new Set(i.teams ?? [])].sort(),
              owner: i.owner ?? null,
              purpose: i.purpose ?? null,
              expiresAt: i.expiresAt ?? null,
              // Whether a password was set; never the hash.
              password: i.passwordHash !== undefined,
              sso: i.sso ?? null,
            },
          },
          at,
        );
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

  async changeGrants(name: string, c: GrantChange, by: Actor): Promise<IdentityInfo> {
    await this.db.transaction().execute(async (trx) => {
      // Serialise changes to admin grants, so two admins removing each other cannot both win.
      if (this.database.caps.rowLocks)
        await trx
          .selectFrom('identity_roles')
          .select('identity_id')
          .where('role', '=', 'admin')
          .forUpdate()
          .execute();
      const { id } = await this.row(name, trx);
      const at = this.now().toISOString();
      const lists = [
        ['identity_roles', 'role', c.roles, c.addRoles, c.removeRoles],
        ['team_members', 'team', c.teams, c.addTeams, c.removeTeams],
      ] as const;
      let removesAdmin = false;
      for (const [table, column, replace, add, remove] of lists) {
        const current = new Set(
          (await trx.selectFrom(table).select(column).where('identity_id', '=', id).execute()).map(
            (r) => (r as Record<string, string>)[column] as string,
          ),
        );
        const want = new Set(replace ?? current);
        for (const x of add ?? []) want.add(x);
        for (const x of remove ?? []) {
          // Taking away what was never given is most likely a typo: say so.
          if (!current.has(x))
            throw new ModelgateError(
              'GRANT_NOT_FOUND',
              `${name} ${column === 'role' ? 'has no role' : 'is not a member of team'} ${x}`,
            );
          want.delete(x);
        }
        const gone = [...current].filter((x) => !want.has(x));
        if (table === 'identity_roles' && gone.includes('admin')) removesAdmin = true;
        if (gone.length > 0)
          await trx
            .deleteFrom(table)
            .where('identity_id', '=', id)
            .where(column, 'in', gone)
            .execute();
        for (const x of want)
          if (!current.has(x))
            await trx
              .insertInto(table)
              .values({ identity_id: id, [column]: x, ...this.grant(by, at) } as never)
              .execute();
      }
      // Only a change that takes admin away can lock the registry out; an expired service
      // account's admin role counts for nothing, since none of its tokens works.
      const now = this.now().toISOString();
      const admins = removesAdmin
        ? await trx
            .selectFrom('identity_roles')
            .innerJoin('identities', 'identities.id', 'identity_roles.identity_id')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('identity_roles.role', '=', 'admin')
            .where((eb) =>
              eb.or([
                eb('identities.expires_at', 'is', null),
                eb('identities.expires_at', '>', now),
              ]),
            )
            .executeTakeFirstOrThrow()
        : { n: 1 };
      if (Number(admins.n) === 0)
        throw new ModelgateError(
          'LAST_ADMIN',
          `${name} holds the last admin role: grant admin to another identity before removing it here`,
        );
      await appendAudit(
        trx,
        {
          actor: by,
          action: 'identity.grants',
          subject: subjects.identity(name),
          content: { change: c, ...(await grantsOf(trx, id)) },
        },
        at,
      );
    });
    return this.getIdentity(name);
  }

  async setPasswordHash(
    name: string,
    hash: string | null,
    by: Actor,
    keepToken?: string,
  ): Promise<string[]> {
    return this.db.transaction().execute(async (trx) => {
      const { id } = await this.row(name, trx);
      const at = this.now().toISOString();
      await trx
        .updateTable('identities')
        .set({ password_hash: hash })
        .where('id', '=', id)
        .execute();
      // Whoever logged in with the old password keeps no session from it.
      let q = trx
        .selectFrom('tokens')
        .select(['id', 'token_hash'])
        .where('identity_id', '=', id)
        .where('created_credential', '=', 'password')
        .where('revoked_at', 'is', null);
      if (keepToken) q = q.where('id', '!=', keepToken);
      const ended = await q.execute();
      if (ended.length > 0)
        await trx
          .updateTable('tokens')
          .set({ revoked_at: at, revoked_by: by.identity, revoked_credential: by.credentialId })
          .where(
            'id',
            'in',
            ended.map((t) => t.id),
          )
          .execute();
      await appendAudit(
        trx,
        {
          actor: by,
          action: hash === null ? 'identity.password.remove' : 'identity.password.set',
          subject: subjects.identity(name),
          content: { name, password: hash !== null, revokedTokens: ended.map((t) => t.id) },
        },
        at,
      );
      return ended.map((t) => t.token_hash);
    });
  }

  async passwordHashOf(name: string): Promise<string | null> {
    const r = await this.db
      .selectFrom('identities')
      .select('password_hash')
      .where('name', '=', name)
      .executeTakeFirst();
    return r?.password_hash ?? null;
  }

  async listTeams(): Promise<TeamInfo[]> {
    const rows = await this.db
      .selectFrom('team_members')
      .innerJoin('identities', 'identities.id', 'team_members.identity_id')
      .select(['team_members.team', 'identities.name'])
      .orderBy('team_members.team')
      .orderBy('identities.name')
      .execute();
    const teams = new Map<string, string[]>();
    for (const r of rows) teams.set(r.team, [...(teams.get(r.team) ?? []), r.name]);
    return [...teams].map(([name, members]) => ({ name, members }));
  }

  async addToken(identity: string, t: NewToken, by: Actor): Promise<TokenInfo> {
    await this.db.transaction().execute(async (trx) => {
      const { id } = await this.row(identity, trx);
      const at = this.now().toISOString();
      await trx
        .insertInto('tokens')
        .values({
          id: t.id,
          identity_id: id,
          token_hash: t.hash,
          name: t.name,
          created_at: at,
          expires_at: t.expiresAt ?? null,
          rotated_from: t.rotatedFrom ?? null,
          scopes: t.scopes ? JSON.stringify(t.scopes) : null,
          created_by: by.identity,
          created_credential: by.credentialId,
        })
        .execute();
      // The token's id and limits; never its secret or hash.
      await appendAudit(
        trx,
        {
          actor: by,
          action: 'token.create',
          subject: subjects.token(t.id),
          content: {
            identity,
            token: {
              id: t.id,
              name: t.name,
              expiresAt: t.expiresAt ?? null,
              rotatedFrom: t.rotatedFrom ?? null,
              scopes: t.scopes ?? null,
              // A digest of the stored hash (itself a hash of the secret): audit verify checks
              // the row with it, and it reveals nothing that could be used to authenticate.
              hashDigest: `sha256:${createHash('sha256').update(t.hash).digest('hex')}`,
            },
          },
        },
        at,
      );
    });
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
        'tokens.created_by',
        'tokens.revoked_by',
        'tokens.token_hash',
        'identities.name as identity',
      ]);
  }

  private static token(
    r: Omit<
      Selectable<TokensTable>,
      'identity_id' | 'created_credential' | 'revoked_credential'
    > & { identity: string },
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
      createdBy: r.created_by,
      revokedBy: r.revoked_by,
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

  async revokeToken(id: string, by: Actor): Promise<string> {
    const r = await this.tokenRow(id);
    await this.db.transaction().execute(async (trx) => {
      const at = this.now().toISOString();
      const res = await trx
        .updateTable('tokens')
        .set({ revoked_at: at, revoked_by: by.identity, revoked_credential: by.credentialId })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 1)
        await appendAudit(
          trx,
          {
            actor: by,
            action: 'token.revoke',
            subject: subjects.token(id),
            content: { id, identity: r.identity },
          },
          at,
        );
    });
    return r.token_hash;
  }

  async expireTokenBy(id: string, at: string, by: Actor): Promise<string> {
    const r = await this.tokenRow(id);
    if (!r.expires_at || r.expires_at > at)
      await this.db.transaction().execute(async (trx) => {
        await trx.updateTable('tokens').set({ expires_at: at }).where('id', '=', id).execute();
        await appendAudit(
          trx,
          {
            actor: by,
            action: 'token.expire',
            subject: subjects.token(id),
            content: { id, identity: r.identity, expiresAt: at },
          },
          this.now().toISOString(),
        );
      });
    return r.token_hash;
  }
}
