import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { IdentityInfo, TokenInfo } from '../../identity/identity-store.js';
import type { CliContext } from '../context.js';
import { seg } from '../context.js';
import { CliError } from '../errors.js';
import { fields, table } from '../output.js';
import { readSecrets } from '../secret-input.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

function identityFields(i: IdentityInfo, extra: [string, string][] = []): string {
  return fields([
    ['name', i.name],
    ['kind', i.kind],
    ['roles', i.roles.join(', ') || '(none)'],
    ['teams', i.teams.join(', ') || '(none)'],
    ['owner', i.owner],
    ['purpose', i.purpose],
    ['expires', i.expiresAt],
    ['password', i.kind === 'user' ? (i.hasPassword ? 'set' : 'none') : null],
    ['sso', i.sso ? `${i.sso.subject} at ${i.sso.issuer}` : null],
    ['created', `${i.createdAt}${i.createdBy ? ` by ${i.createdBy}` : ''}`],
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
      o: {
        role?: string[];
        team?: string[];
        owner?: string;
        purpose?: string;
        expires?: string;
        password?: boolean;
        ssoIssuer?: string;
        ssoSubject?: string;
      },
      cmd: Command,
    ) => {
      let expiresAt: string | undefined;
      if (o.expires) {
        const t = Date.parse(o.expires);
        if (Number.isNaN(t))
          throw new CliError(`--expires ${o.expires} is not a date (e.g. 2027-06-30)`, 2);
        expiresAt = new Date(t).toISOString();
      }
      if (Boolean(o.ssoIssuer) !== Boolean(o.ssoSubject))
        throw new CliError('give --sso-issuer and --sso-subject together', 2);
      const password = o.password ? (await readSecrets([`password for ${name}: `]))[0] : undefined;
      const i = await ctx.client().request<IdentityInfo>('POST', '/api/v1/identities', {
        name,
        kind,
        ...(o.role && { roles: o.role }),
        ...(o.team && { teams: o.team }),
        ...(o.owner && { owner: o.owner }),
        ...(o.purpose && { purpose: o.purpose }),
        ...(expiresAt && { expiresAt }),
        ...(password !== undefined && { password }),
        ...(o.ssoIssuer && { sso: { issuer: o.ssoIssuer, subject: o.ssoSubject } }),
      });
      ctx.print(cmd, i, () => `created ${kind} ${i.name}\n${identityFields(i)}`);
    };

  const user = program.command('user').description('people (changing others needs the admin role)');
  user
    .command('create <name>')
    .description(
      'create a user; they log in with SSO, a password (--password) or a token (modelgate token create NAME)',
    )
    .option(
      '--role <role>',
      'a role: viewer, contributor, evaluator, approver, admin (repeatable)',
      collect,
    )
    .option('--team <team>', 'a team it belongs to (repeatable)', collect)
    .option('--password', 'set a local password: prompted, or one line on standard input')
    .option('--sso-issuer <url>', "bind the user to an SSO login: the identity provider's issuer")
    .option('--sso-subject <sub>', "with --sso-issuer: the user's subject (sub claim) there")
    .action(create('user'));
  user
    .command('set-password [name]')
    .description(
      "set a user's local password (admin), or change your own (without NAME: current, then new); prompted, or lines on standard input",
    )
    .action(async (name: string | undefined, _o: unknown, cmd: Command) => {
      if (name) {
        const [password] = await readSecrets([`new password for ${name}: `]);
        await ctx.client().request('PUT', `/api/v1/identities/${seg(name)}/password`, { password });
      } else {
        const [current, password] = await readSecrets(['current password: ', 'new password: ']);
        await ctx.client().request('POST', '/api/v1/password', { current, password });
      }
      ctx.print(cmd, { ok: true }, () => `password set${name ? ` for ${name}` : ''}`);
    });
  user
    .command('remove-password <name>')
    .description('remove a local password: the user logs in with SSO or a token instead')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await ctx.client().request('DELETE', `/api/v1/identities/${seg(name)}/password`);
      ctx.print(cmd, { ok: true }, () => `password removed for ${name}`);
    });

  program
    .command('service-account')
    .description('non-human identities: CI pipelines, services (needs the admin role)')
    .command('create <name>')
    .description('create a service account, answerable to an owner and with a stated purpose')
    .requiredOption('--owner <user>', 'the person answerable for it')
    .requiredOption('--purpose <text>', 'what it is for, e.g. "nightly scans from CI"')
    .option('--role <role>', 'a role (repeatable)', collect)
    .option('--team <team>', 'a team it belongs to (repeatable)', collect)
    .option('--expires <date>', 'when it ends: no token of it works afterwards (e.g. 2027-06-30)')
    .action(create('service-account'));

  const team = program
    .command('team')
    .description('teams: who belongs to which (needs the admin role; SSO logins sync them)');
  team
    .command('list')
    .description('every team and its members')
    .action(async (_o: unknown, cmd: Command) => {
      const r = await ctx
        .client()
        .request<{ items: { name: string; members: string[] }[] }>('GET', '/api/v1/teams');
      ctx.print(cmd, r, () =>
        table(
          ['TEAM', 'MEMBERS'],
          r.items.map((t) => [t.name, t.members.join(', ')]),
        ),
      );
    });
  team
    .command('show <team>')
    .description("a team's members")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const t = await ctx
        .client()
        .request<{ name: string; members: string[] }>('GET', `/api/v1/teams/${seg(name)}`);
      ctx.print(cmd, t, () =>
        fields([
          ['team', t.name],
          ['members', t.members.join(', ')],
        ]),
      );
    });
  for (const [verb, method, what] of [
    ['add', 'PUT', 'add an identity to a team (a new team starts with its first member)'],
    ['remove', 'DELETE', 'remove an identity from a team'],
  ] as const)
    team
      .command(`${verb} <team> <identity>`)
      .description(what)
      .action(async (t: string, who: string, _o: unknown, cmd: Command) => {
        const i = await ctx
          .client()
          .request<IdentityInfo>(method, `/api/v1/teams/${seg(t)}/members/${seg(who)}`);
        ctx.print(cmd, i, () => identityFields(i));
      });

  const role = program.command('role').description('roles: what each allows, and who has them');
  role
    .command('list')
    .description('the roles the policies in force name, and the policies that name each')
    .action(async (_o: unknown, cmd: Command) => {
      const r = await ctx.client().request<{
        items: { name: string; builtIn: boolean; description: string; policies: string[] }[];
      }>('GET', '/api/v1/roles');
      ctx.print(cmd, r, () =>
        table(
          ['ROLE', 'BUILT-IN', 'ALLOWS', 'POLICIES'],
          r.items.map((x) => [
            x.name,
            x.builtIn ? 'yes' : 'no',
            x.description,
            x.policies.join(', '),
          ]),
        ),
      );
    });
  for (const [verb, method, what] of [
    ['grant', 'PUT', 'grant a role to an identity (needs the admin role)'],
    ['revoke', 'DELETE', 'take a role from an identity (the last admin keeps admin)'],
  ] as const)
    role
      .command(`${verb} <role> <identity>`)
      .description(what)
      .action(async (r: string, who: string, _o: unknown, cmd: Command) => {
        const i = await ctx
          .client()
          .request<IdentityInfo>(method, `/api/v1/identities/${seg(who)}/roles/${seg(r)}`);
        ctx.print(cmd, i, () => identityFields(i));
      });

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

  const authz = program
    .command('authz')
    .description('authorization: explain decisions, manage operator Cedar policies');
  const policy = authz
    .command('policy')
    .description('Cedar policies added through the API (needs the admin role)');
  policy
    .command('list')
    .description('every policy in force: built-in, from files (base), and added through the API')
    .option('--text', 'print each policy in full')
    .action(async (o: { text?: boolean }, cmd: Command) => {
      const r = await ctx.client().request<{
        items: { id: string; source: string; text: string; createdBy: string | null }[];
      }>('GET', '/api/v1/authz/policies');
      ctx.print(cmd, r, () =>
        o.text
          ? r.items.map((p) => `// ${p.id} (${p.source})\n${p.text}\n`).join('\n')
          : table(
              ['ID', 'SOURCE', 'ADDED BY'],
              r.items.map((p) => [p.id, p.source, p.createdBy ?? '']),
            ),
      );
    });
  policy
    .command('add <id> <file>')
    .description(
      'add or replace one Cedar policy from FILE; validated with every policy in force, stored only if all validate',
    )
    .action(async (id: string, file: string, _o: unknown, cmd: Command) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        throw new CliError(`cannot read ${file}: ${(e as Error).message}`, 2);
      }
      const p = await ctx
        .client()
        .request<{ id: string; digest: string }>('PUT', `/api/v1/authz/policies/${seg(id)}`, {
          text,
        });
      ctx.print(cmd, p, () => `policy ${p.id} in force (${p.digest})`);
    });
  policy
    .command('remove <id>')
    .description('remove a policy added through the API')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      await ctx.client().request('DELETE', `/api/v1/authz/policies/${seg(id)}`);
      ctx.print(cmd, { removed: id }, () => `policy ${id} removed`);
    });

  authz
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
