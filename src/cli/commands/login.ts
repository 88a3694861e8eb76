import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ApiClient } from '../client.js';
import { writeConfig } from '../config.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { readSecrets } from '../secret-input.js';

interface LoginOpts {
  server: string;
  token?: string;
  oidc?: boolean;
  audience: string;
  oidcTokenEnv?: string;
  oidcTokenFile?: string;
  user?: string;
  hours?: string;
}

interface Issued {
  identity: string;
  kind: string;
  secret: string;
  expiresAt: string;
}

/**
 * The OIDC token of the CI job this runs in: $MODELGATE_OIDC_TOKEN when set (GitLab `id_tokens`,
 * any platform), else requested from GitHub Actions for `audience` (the job needs
 * `permissions: id-token: write`).
 */
async function ciOidcToken(audience: string): Promise<string> {
  const given = process.env.MODELGATE_OIDC_TOKEN;
  if (given) return given.trim();
  const url = process.env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const bearer = process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (!url || !bearer)
    throw new CliError(
      'no OIDC token here: set MODELGATE_OIDC_TOKEN (GitLab: an id_tokens entry), or run in GitHub Actions with permissions id-token: write',
      2,
    );
  const u = new URL(url);
  u.searchParams.set('audience', audience);
  let res: Response;
  try {
    res = await fetch(u, { headers: { authorization: `Bearer ${bearer}` } });
  } catch (e) {
    throw new CliError(`could not reach the GitHub OIDC endpoint: ${(e as Error).message}`, 2);
  }
  const body = (await res.json().catch(() => ({}))) as { value?: unknown };
  if (!res.ok || typeof body.value !== 'string')
    throw new CliError(`the GitHub OIDC endpoint answered ${res.status} without a token`, 2);
  return body.value;
}

/** `modelgate login`: gets or checks a token, then stores it with the server URL (mode 0600). */
export function registerLogin(program: Command, ctx: CliContext): void {
  program
    .command('login')
    .description(
      'store the server URL and a token in the config file (mode 0600), after checking them',
    )
    .requiredOption('--server <url>', 'server URL, e.g. http://127.0.0.1:7070')
    .option('--token <token>', 'an API token (mgt_...)')
    .option(
      '--oidc',
      "in CI: exchange the job's OIDC token ($MODELGATE_OIDC_TOKEN, or GitHub Actions' own) for a short-lived token of the service account the server's trust rules name",
    )
    .option(
      '--audience <aud>',
      'with --oidc in GitHub Actions: the audience to ask for',
      'modelgate',
    )
    .option(
      '--oidc-token-env <name>',
      'exchange the OIDC token in this environment variable (a workload token, or a person’s SSO ID token)',
    )
    .option('--oidc-token-file <path>', 'the same, with the OIDC token read from a file')
    .option(
      '--user <name>',
      'log in with a local password (prompted, or one line on standard input)',
    )
    .option('--hours <n>', 'with --user: how long the token lasts (1-24)', '12')
    .addHelpText(
      'after',
      `
Give exactly one of --token, --oidc, --oidc-token-env, --oidc-token-file, --user.

Examples:
  modelgate login --server https://mg.example.com --token "$MODELGATE_TOKEN"
  modelgate login --server https://mg.example.com --oidc              # GitHub Actions / GitLab CI
  modelgate login --server https://mg.example.com --user alice       # prompts for the password
  printf '%s\\n' "$PW" | modelgate login --server URL --user alice   # password on standard input

The file is $MODELGATE_CONFIG, else $XDG_CONFIG_HOME/modelgate/config.json, else ~/.config/modelgate/config.json.
MODELGATE_SERVER and MODELGATE_TOKEN override it for one command.`,
    )
    .action(async (opts: LoginOpts, cmd: Command) => {
      const ways = [opts.token, opts.oidc, opts.oidcTokenEnv, opts.oidcTokenFile, opts.user];
      if (ways.filter(Boolean).length !== 1)
        throw new CliError(
          'give exactly one of --token, --oidc, --oidc-token-env, --oidc-token-file, --user',
          2,
        );
      const server = opts.server.replace(/\/+$/, '');
      const anonymous = new ApiClient(server, '');
      let token = opts.token ?? '';
      let note = '';
      const exchanged = (r: Issued) => {
        token = r.secret;
        note = ` as ${r.identity} until ${r.expiresAt}`;
      };
      if (opts.user) {
        const hours = Number(opts.hours);
        if (!Number.isInteger(hours) || hours < 1 || hours > 24)
          throw new CliError('--hours must be a whole number from 1 to 24', 2);
        const [password] = await readSecrets([`password for ${opts.user}: `]);
        exchanged(
          await anonymous.request<Issued>('POST', '/api/v1/login', {
            name: opts.user,
            password,
            hours,
          }),
        );
      } else if (!opts.token) {
        let jwt: string | undefined;
        if (opts.oidc) jwt = await ciOidcToken(opts.audience);
        else if (opts.oidcTokenEnv) jwt = process.env[opts.oidcTokenEnv]?.trim();
        else {
          try {
            jwt = readFileSync(opts.oidcTokenFile ?? '', 'utf8').trim();
          } catch (e) {
            throw new CliError(`cannot read ${opts.oidcTokenFile}: ${(e as Error).message}`, 2);
          }
        }
        if (!jwt)
          throw new CliError(
            opts.oidcTokenEnv
              ? `environment variable ${opts.oidcTokenEnv} is empty`
              : 'the OIDC token is empty',
            2,
          );
        exchanged(await anonymous.request<Issued>('POST', '/api/v1/oidc/token', { token: jwt }));
      }
      // whoami proves the token for any identity, whatever its roles (401 is exit 1).
      await new ApiClient(server, token).request('GET', '/api/v1/whoami');
      const path = writeConfig({ server, token });
      ctx.print(
        cmd,
        { server, config: path },
        () => `logged in to ${server}${note}; saved to ${path}`,
      );
    });
}
