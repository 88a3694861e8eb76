import type { Command } from 'commander';
import { ApiClient } from '../client.js';
import { writeConfig } from '../config.js';
import type { CliContext } from '../context.js';

/** `modelgate login`: checks the token against the server, then stores both (mode 0600). */
export function registerLogin(program: Command, ctx: CliContext): void {
  program
    .command('login')
    .description(
      'store the server URL and a token in the config file (mode 0600), after checking them',
    )
    .requiredOption('--server <url>', 'server URL, e.g. http://127.0.0.1:7070')
    .requiredOption('--token <token>', 'API token (mgt_...)')
    .addHelpText(
      'after',
      '\nThe file is $MODELGATE_CONFIG, else $XDG_CONFIG_HOME/modelgate/config.json, else ~/.config/modelgate/config.json.\nMODELGATE_SERVER and MODELGATE_TOKEN override it for one command.',
    )
    .action(async (opts: { server: string; token: string }, cmd: Command) => {
      const server = opts.server.replace(/\/+$/, '');
      const client = new ApiClient(server, opts.token);
      // Any authenticated read proves the token; a bad one is refused with 401 (exit 1).
      await client.request('GET', '/api/v1/models?limit=1');
      const path = writeConfig({ server, token: opts.token });
      ctx.print(cmd, { server, config: path }, () => `logged in to ${server}; saved to ${path}`);
    });
}
