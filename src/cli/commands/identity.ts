import type { Command } from 'commander';
import type { IdentityInfo, TokenInfo } from '../../identity/identity-store.js';
import type { CliContext } from '../context.js';
import { seg } from '../context.js';
import { fields, table } from '../output.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

function identityFields(i: IdentityInfo, extra: [string, string][] = []): string {
  return fields([
    ['name', i.name],
    ['kind', i.kind],
    ['roles', i.roles.join(', ') || '(none)'],
    ['teams', i.teams.join(', ') || '(none)'],
    ['owner', i.owner],
    ['purpose', i.purpose],
    ['created', i.createdAt],
    ...extra,
  ]);
}

const tokenRows = (items: TokenInfo[]) =>
  table(
    ['ID', 'NAME', 'CREATED', 'LAST USED', 'FROM', 'EXPIRES', 'REVOKED'],
    items.map((t) => [
      t.id,
      t.name,
      t.createdAt,
      t.lastUsedAt,
      t.lastUsedFrom,
      t.expiresAt ?? 'never',
      t.revokedAt ?? '',
    ]),
  );

/** `modelgate whoami`, `user`, `service-account`, `identity` and `token` commands. */
export function registerIdentity(program: Command, ctx: CliContext): void {
  program
    .command('whoami')
    .description('the identity your token belongs to, its roles and teams')
    .action(async (_o: unknown, cmd: Command) => {
      const me = await ctx
        .client()
        .request<{ identity: IdentityInfo; tokenId: string }>('GET', '/api/v1/whoami');
      ctx.print(cmd, me, () => identityFields(me.identity, [['token', me.tokenId]]));
    });

  const create =
    (kind: 'user' | 'service-account') =>
    async (
      name: string,
      o: { role?: string[]; team?: string[]; owner?: string; purpose?: string },
      cmd: Command,
    ) => {
      const i = await ctx.client().request<IdentityInfo>('POST', '/api/v1/identities', {
        name,
        kind,
        ...(o.role && { roles: o.role }),
        ...(o.team && { teams: o.team }),
        ...(o.owner && { owner: o.owner }),
        ...(o.purpose && { purpose: o.purpose }),
      });
      ctx.print(cmd, i, () => `created ${kind} ${i.name}\n${identityFields(i)}`);
    };

  program
    .command('user')
    .description('people (needs the admin role)')
    .command('create <name>')
    .description('create a user; give it a token with: modelgate token create NAME')
    .option(
      '--role <role>',
      'a role: viewer, contributor, evaluator, approver, admin (repeatable)',
      collect,
    )
    .option('--team <team>', 'a team it belongs to (repeatable)', collect)
    .action(create('user'));

  program
    .command('service-account')
    .description('non-human identities: CI pipelines, services (needs the admin role)')
    .command('create <name>')
    .description('create a service account, answerable to an owner and with a stated purpose')
    .requiredOption('--owner <user>', 'the person answerable for it')
    .requiredOption('--purpose <text>', 'what it is for, e.g. "nightly scans from CI"')
    .option('--role <role>', 'a role (repeatable)', collect)
    .option('--team <team>', 'a team it belongs to (repeatable)', collect)
    .action(create('service-account'));

  const identity = program
    .command('identity')
    .description('list, show and change the roles and teams of users and service accounts');
  identity
    .command('list')
    .description('every user and service account')
    .action(async (_o: unknown, cmd: Command) => {
      const r = await ctx.client().request<{ items: IdentityInfo[] }>('GET', '/api/v1/identities');
      ctx.print(cmd, r, () =>
        table(
          ['NAME', 'KIND', 'ROLES', 'TEAMS'],
          r.items.map((i) => [i.name, i.kind, i.roles.join(','), i.teams.join(',')]),
        ),
      );
    });
  identity
    .command('show <name>')
    .description('one identity')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const i = await ctx.client().request<IdentityInfo>('GET', `/api/v1/identities/${seg(name)}`);
      ctx.print(cmd, i, () => identityFields(i));
    });
  identity
    .command('set <name>')
    .description('replace the roles and/or the teams of an identity (takes effect at once)')
    .option('--role <role>', 'a role (repeatable); --role none removes them all', collect)
    .option('--team <team>', 'a team (repeatable); --team none removes them all', collect)
    .action(async (name: string, o: { role?: string[]; team?: string[] }, cmd: Command) => {
      const none = (l?: string[]) => (l && l.length === 1 && l[0] === 'none' ? [] : l);
      const roles = none(o.role);
      const teams = none(o.team);
      const i = await ctx
        .client()
        .request<IdentityInfo>('PATCH', `/api/v1/identities/${seg(name)}`, {
          ...(roles && { roles }),
          ...(teams && { teams }),
        });
      ctx.print(cmd, i, () => identityFields(i));
    });

  program
    .command('authz')
    .description('authorization questions')
    .command('explain <action> <resource>')
    .description(
      'whether an identity may do ACTION on RESOURCE, and which policy decides; RESOURCE is registry, model:NAME, version:NAME@N or alias:NAME:ALIAS (exit 0 allowed, 1 denied)',
    )
    .option('--as <identity>', 'ask for another identity (needs the admin role); default: you')
    .option('--version-author <name>', 'for approvePromotion: who registered the version')
    .action(
      async (
        action: string,
        resource: string,
        o: { as?: string; versionAuthor?: string },
        cmd: Command,
      ) => {
        const d = await ctx
          .client()
          .request<{ allowed: boolean; explanation: string }>('POST', '/api/v1/authz/explain', {
            action,
            resource,
            ...(o.as && { as: o.as }),
            ...(o.versionAuthor && { versionAuthor: o.versionAuthor }),
          });
        ctx.print(cmd, d, () => d.explanation);
        if (!d.allowed) process.exitCode = 1;
      },
    );

  const token = program
    .command('token')
    .description('API tokens: issue, list, revoke, rotate (secrets are shown once)');
  token
    .command('create <identity>')
    .description('issue a token for an identity (needs the admin role)')
    .option('--name <name>', 'what the token is for', 'cli')
    .option('--expires-in-days <n>', 'lifetime in days (default: no expiry)')
    .option(
      '--scope <action>',
      'limit the token to an action, e.g. read or pushVersion (repeatable; default: all its identity may do)',
      collect,
    )
    .action(
      async (
        who: string,
        o: { name: string; expiresInDays?: string; scope?: string[] },
        cmd: Command,
      ) => {
        const r = await ctx
          .client()
          .request<{ token: TokenInfo; secret: string }>(
            'POST',
            `/api/v1/identities/${seg(who)}/tokens`,
            {
              name: o.name,
              ...(o.expiresInDays && { expiresInDays: Number(o.expiresInDays) }),
              ...(o.scope && { scopes: o.scope }),
            },
          );
        ctx.print(
          cmd,
          r,
          () =>
            `token ${r.token.id} for ${r.token.identity}${r.token.expiresAt ? `, expires ${r.token.expiresAt}` : ''}\n${r.secret}\n(shown once: store it now)`,
        );
      },
    );
  token
    .command('list [identity]')
    .description("your own tokens, or an identity's (needs the admin role)")
    .action(async (who: string | undefined, _o: unknown, cmd: Command) => {
      const path = who ? `/api/v1/identities/${seg(who)}/tokens` : '/api/v1/tokens';
      const r = await ctx.client().request<{ items: TokenInfo[] }>('GET', path);
      ctx.print(cmd, r, () => tokenRows(r.items));
    });
  token
    .command('revoke <id>')
    .description('revoke a token: refused from its next use on')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const t = await ctx.client().request<TokenInfo>('DELETE', `/api/v1/tokens/${seg(id)}`);
      ctx.print(cmd, t, () => `revoked ${t.id} (${t.identity}, ${t.name})`);
    });
  token
    .command('rotate <id>')
    .description('a new token for the same identity; the old one stops after the overlap')
    .option('--overlap <seconds>', 'how long the old token keeps working', '3600')
    .action(async (id: string, o: { overlap: string }, cmd: Command) => {
      const r = await ctx
        .client()
        .request<{ token: TokenInfo; secret: string }>('POST', `/api/v1/tokens/${seg(id)}/rotate`, {
          overlapSeconds: Number(o.overlap),
        });
      ctx.print(
        cmd,
        r,
        () =>
          `token ${r.token.id} replaces ${id} (which stops in ${o.overlap} s)\n${r.secret}\n(shown once: store it now)`,
      );
    });
}
