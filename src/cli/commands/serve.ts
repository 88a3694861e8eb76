import type { Command } from 'commander';
import type { compose as Compose } from '../../server/composition.js';
import type { loadConfig as LoadConfig } from '../../server/config.js';
import { CliError } from '../errors.js';

/** `modelgate serve`: runs the registry server until SIGINT or SIGTERM. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the registry server (SQLite and ./modelgate-data by default)')
    .option(
      '--data-dir <dir>',
      'data folder: database, blobs, initial token (env MODELGATE_DATA_DIR)',
      undefined,
    )
    .option('--host <host>', 'address to listen on (env MODELGATE_HOST)', undefined)
    .option('--port <port>', 'port to listen on (env MODELGATE_PORT)', undefined)
    .option(
      '--database-url <url>',
      'postgres://... to use PostgreSQL instead of SQLite (env MODELGATE_DATABASE_URL)',
    )
    .option(
      '--config <file>',
      'server config file (JSON): allowedEndpoints, secrets, trustedProxies (env MODELGATE_SERVER_CONFIG)',
    )
    .addHelpText(
      'after',
      `
Environment:
  MODELGATE_BOOTSTRAP_TOKEN   the first admin token (mgt_ + 43 base64url chars); else one is generated,
                              printed once and written to <data-dir>/initial-admin-token (mode 0600)
  MODELGATE_MAX_UPLOAD_BYTES  largest accepted file upload (default 64 GiB)
  MODELGATE_LOG_LEVEL         trace | debug | info | warn | error (default info)
  MODELGATE_AUTO_SCAN         scan every pushed version with the artifact scanner (default true)
  MODELGATE_JOB_LEASE_MS      how long a running evaluation's claim lasts without renewal;
                              a job whose server died is taken up again after it (default 30000)
  MODELGATE_JOB_POLL_MS       how often an idle server looks for queued evaluations (default 1000)
  MODELGATE_ALLOWED_ENDPOINTS URL prefixes red-team runs may call (comma-separated; default: none).
                              A host given by name must resolve to public addresses only; list a
                              private or loopback server by address, e.g. http://10.0.0.5:8000/v1
  MODELGATE_SECRET_<NAME>     the value of secret <name>, for red-team target headers such as
                              {"Authorization": {"secret": "openai"}} (MODELGATE_SECRET_OPENAI)
  MODELGATE_SECRET_<NAME>_ENDPOINTS  the URL prefixes the secret may be sent to (required)
  MODELGATE_SECRET_<NAME>_HEADERS    the header names it may be sent in (default Authorization)
  MODELGATE_TRUSTED_PROXIES   reverse proxies whose X-Forwarded-For names the client (IPs or CIDRs,
                              comma-separated; default: none, the peer address is the client)

Server config file (--config), JSON:
  {"allowedEndpoints": ["https://api.openai.com/v1"],
   "secrets": {"openai": {"value": "Bearer sk-...", "endpoints": ["https://api.openai.com/v1"],
                          "headers": ["Authorization"]}}}
  Environment variables win over the file.`,
    )
    .action(
      async (o: {
        dataDir?: string;
        host?: string;
        port?: string;
        databaseUrl?: string;
        config?: string;
      }) => {
        // Loaded here so that client commands do not pay for the server's modules at start-up.
        const { compose } = await import('../../server/composition.js');
        const { loadConfig } = await import('../../server/config.js');
        let config: ReturnType<typeof LoadConfig>;
        try {
          config = loadConfig(o);
        } catch (e) {
          throw new CliError((e as Error).message, 2);
        }
        let composed: Awaited<ReturnType<typeof Compose>>;
        try {
          composed = await compose(config, {
            logger: { level: config.logLevel, redact: ['req.headers.authorization'] },
            startWorker: true,
          });
        } catch (e) {
          throw new CliError(`cannot start: ${(e as Error).message}`, 2);
        }
        const t = composed.bootstrapToken;
        if (t?.generated) {
          // Shown once, on the terminal only; never logged.
          process.stdout.write(
            `\nInitial admin token (shown once; also in ${t.file}, mode 0600):\n\n  ${t.secret}\n\nLog in with:\n  modelgate login --server http://${config.host}:${config.port} --token ${t.secret}\n\n`,
          );
        }
        try {
          await composed.app.listen({ host: config.host, port: config.port });
        } catch (e) {
          await composed.close();
          throw new CliError(
            `cannot listen on ${config.host}:${config.port}: ${(e as Error).message}`,
            2,
          );
        }
        composed.app.log.info(
          { database: composed.database.describe, dataDir: config.dataDir },
          'modelgate is serving',
        );
        const stop = async () => {
          await composed.close();
          process.exit(0);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      },
    );
}
