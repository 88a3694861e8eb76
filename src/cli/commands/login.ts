import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ApiClient } from '../client.js';
import { writeConfig } from '../config.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';

/** `modelgate login`: checks the token against the server, then stores both (mode 0600). */
export function registerLogin(program: Command, ctx: CliContext): void {
  program
    .command('login')
    .description(
      'store the server URL and a token in the config file (mode 0600), after checking them',
    )
    .requiredOption('--server <url>', 'server URL, e.g. http://127.0.0.1:7070')
    .option('--token <token>', 'API token (mgt_...)')
    .option(
      '--oidc-token-env <name>',
      "exchange the workload OIDC token in this environment variable (CI) for a short-lived token of the service account the server's trust rules name",
    )
    .option('--oidc-token-file <path>', 'the same, with the OIDC token read from a file')
    .addHelpText(
      'after',
      '\nGive exactly one of --token, --oidc-token-env, --oidc-token-file.\nThe file is $MODELGATE_CONFIG, else $XDG_CONFIG_HOME/modelgate/config.json, else ~/.config/modelgate/config.json.\nMODELGATE_SERVER and MODELGATE_TOKEN override it for one command.',
    )
    .action(
      async (
        opts: { server: string; token?: string; oidcTokenEnv?: string; oidcTokenFile?: string },
        cmd: Command,
      ) => {
        const given = [opts.token, opts.oidcTokenEnv, opts.oidcTokenFile].filter(Boolean).length;
        if (given !== 1)
          throw new CliError('give exactly one of --token, --oidc-token-env, --oidc-token-file', 2);
        const server = opts.server.replace(/\/+$/, '');
        let token = opts.token ?? '';
        let note = '';
        if (!opts.token) {
          const jwt = opts.oidcTokenEnv
            ? process.env[opts.oidcTokenEnv]
            : readFileSync(opts.oidcTokenFile ?? '', 'utf8').trim();
          if (!jwt) throw new CliError(`environment variable ${opts.oidcTokenEnv} is empty`, 2);
          const r = await new ApiClient(server, '').request<{
            secret: string;
            serviceAccount: string;
            expiresAt: string;
          }>('POST', '/api/v1/oidc/token', { token: jwt });
          token = r.secret;
          note = ` as ${r.serviceAccount} until ${r.expiresAt}`;
        }
        // whoami proves the token for any identity, whatever its roles (401 is exit 1).
        await new ApiClient(server, token).request('GET', '/api/v1/whoami');
        const path = writeConfig({ server, token });
        ctx.print(
          cmd,
          { server, config: path },
          () => `logged in to ${server}${note}; saved to ${path}`,
        );
      },
    );
}
