#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { registerAlias } from './commands/alias.js';
import { registerAudit } from './commands/audit.js';
import { registerDataset } from './commands/dataset.js';
import { registerEval } from './commands/eval.js';
import { registerEvidence } from './commands/evidence.js';
import { registerGates } from './commands/gates.js';
import { registerIdentity } from './commands/identity.js';
import { registerLineage } from './commands/lineage.js';
import { registerLogin } from './commands/login.js';
import { registerModel } from './commands/model.js';
import { registerPolicy } from './commands/policy.js';
import { registerPush } from './commands/push.js';
import { registerRedteam } from './commands/redteam.js';
import { registerScan } from './commands/scan.js';
import { registerServe } from './commands/serve.js';
import { registerVersion } from './commands/version.js';
import { registerWitness } from './commands/witness.js';
import { context } from './context.js';
import { CliError } from './errors.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** Builds the `modelgate` command tree. */
export function buildProgram(): Command {
  const program = new Command('modelgate')
    .description(
      'Modelgate: a governed model registry. Run `modelgate serve`, then `modelgate login`.',
    )
    .version(pkg.version)
    .option('--json', 'print JSON instead of tables')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .addHelpText(
      'after',
      `
Exit codes: 0 success, 1 refused by the server (4xx), 2 usage, connection or server error.

Quick start:
  modelgate serve                      # prints the admin token on first start
  modelgate login --server http://127.0.0.1:7070 --token mgt_...
  modelgate model create fraud-detector --risk-tier high --owner risk
  modelgate push ./model.safetensors --model fraud-detector
  modelgate alias set fraud-detector staging 1`,
    );
  registerServe(program);
  registerLogin(program, context);
  registerModel(program, context);
  registerPush(program, context);
  registerVersion(program, context);
  registerAlias(program, context);
  registerLineage(program, context);
  registerIdentity(program, context);
  registerDataset(program, context);
  registerScan(program);
  registerEval(program, context);
  registerRedteam(program, context);
  registerAudit(program, context);
  registerPolicy(program, context);
  registerGates(program, context);
  registerEvidence(program, context);
  registerWitness(program, context);
  // Subcommands exit through the same override so usage errors end with code 2.
  const override = (c: Command) => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  override(program);
  return program;
}

/**
 * A reader that went away (`modelgate --help | head`) is not an error: stop writing, quietly,
 * keeping the status so far (0 unless something failed). Anything else still surfaces.
 */
function quietOnBrokenPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

async function main(): Promise<void> {
  quietOnBrokenPipe(process.stdout);
  quietOnBrokenPipe(process.stderr);
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      const ok = e.code === 'commander.helpDisplayed' || e.code === 'commander.version';
      process.exitCode = ok ? 0 : 2;
      return;
    }
    if (e instanceof CliError) {
      process.stderr.write(`error: ${e.message}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    process.stderr.write(`error: ${(e as Error).message ?? e}\n`);
    process.exitCode = 2;
  }
}

await main();
