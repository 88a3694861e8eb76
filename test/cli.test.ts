import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { issueToken } from '../src/identity/tokens.js';
import { describeEachEngine } from './helpers/engines.js';
import { CLI, type ServerProcess, startServer } from './helpers/server-process.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
      },
    );
  });
}

const sha256sum = (file: string) =>
  execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0] ?? '';

describeEachEngine('modelgate CLI against a running server', (db) => {
  let server: ServerProcess;
  let env: Record<string, string>;
  let work: string;
  const token = issueToken().secret;

  beforeAll(async () => {
    server = await startServer({ dataDir: db().dataDir, databaseUrl: db().url, token });
    work = mkdtempSync(join(tmpdir(), 'modelgate-cli-'));
    env = {
      MODELGATE_CONFIG: join(work, 'config.json'),
      MODELGATE_SERVER: '',
      MODELGATE_TOKEN: '',
    };
  });
  afterAll(async () => {
    await server.stop();
  });

  it('logs in, refusing a bad token, and stores the config with mode 0600', async () => {
    const bad = await run(['login', '--server', server.url, '--token', 'mgt_nope'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/UNAUTHENTICATED/);
    const ok = await run(['login', '--server', server.url, '--token', token], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(statSync(env.MODELGATE_CONFIG ?? '').mode & 0o777).toBe(0o600);
    // The server's log never holds the token.
    expect(server.output()).not.toContain(token);
  });

  it('walks through create, push, alias and lineage as in the README', async () => {
    const mg = (...args: string[]) => run(args, env);
    expect((await mg('model', 'create', 'fraud-base')).code).toBe(0);
    expect(
      (await mg('model', 'create', 'fraud-detector', '--risk-tier', 'limited', '--owner', 'risk'))
        .code,
    ).toBe(0);
    const ds = await mg(
      'dataset',
      'create',
      'transactions',
      '--uri',
      's3://data/tx',
      '--licence',
      'CC-BY-4.0',
    );
    expect(ds.code, ds.stderr).toBe(0);

    // A folder of three files, one nested.
    const folder = join(work, 'base');
    mkdirSync(join(folder, 'tokenizer'), { recursive: true });
    writeFileSync(join(folder, 'config.json'), '{"layers": 2}');
    writeFileSync(join(folder, 'model.safetensors'), randomBytes(100_000));
    writeFileSync(join(folder, 'tokenizer', 'vocab.txt'), 'a\nb\n');
    const pushed = await mg('push', folder, '--model', 'fraud-base', '--json');
    expect(pushed.code, pushed.stderr).toBe(0);
    const base = JSON.parse(pushed.stdout);
    const order = ['config.json', 'model.safetensors', 'tokenizer/vocab.txt'];
    const fileDigests = order.map((p) => sha256sum(join(folder, p)));
    expect(base.files.map((f: { path: string; digest: string }) => [f.path, f.digest])).toEqual(
      order.map((p, i) => [p, `sha256:${fileDigests[i]}`]),
    );
    const manifestDigest = createHash('sha256')
      .update(Buffer.concat(fileDigests.map((d) => Buffer.from(d, 'hex'))))
      .digest('hex');
    expect(base.digest).toBe(`sha256:${manifestDigest}`);

    // One larger file with lineage to the dataset and the base version.
    const big = join(work, 'detector.bin');
    writeFileSync(big, randomBytes(24 * 1024 * 1024));
    const p2 = await mg(
      'push',
      big,
      '--model',
      'fraud-detector',
      '--lineage',
      'dataset:transactions',
      '--lineage',
      'version:fraud-base@1',
      '--source',
      's3://runs/42',
      '--json',
    );
    expect(p2.code, p2.stderr).toBe(0);
    const det = JSON.parse(p2.stdout);
    expect(det.files).toEqual([
      { path: 'detector.bin', size: 24 * 1024 * 1024, digest: `sha256:${sha256sum(big)}` },
    ]);
    const p3 = await mg('push', big, '--model', 'fraud-detector');
    expect(p3.code).toBe(0);
    expect(p3.stdout).toMatch(/^pushed fraud-detector@2 sha256:[0-9a-f]{64}/);

    // Aliases: set, move, and ask what it was between the two moves.
    expect((await mg('alias', 'set', 'fraud-detector', 'champion', '1')).code).toBe(0);
    await new Promise((r) => setTimeout(r, 50));
    const between = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 50));
    expect((await mg('alias', 'set', 'fraud-detector', 'champion', '2')).stdout).toContain(
      'fraud-detector@champion -> 2',
    );
    const at = JSON.parse(
      (await mg('alias', 'history', 'fraud-detector', '--at', between, '--json')).stdout,
    );
    expect(at.items).toMatchObject([{ name: 'champion', version: 1 }]);
    const hist = await mg('alias', 'history', 'fraud-detector');
    expect(hist.stdout.trim().split('\n')).toHaveLength(3);
    const shown = await mg('version', 'show', 'fraud-detector@champion');
    expect(shown.stdout).toMatch(/version:\s+fraud-detector@2/);

    // Lineage both ways.
    const up = JSON.parse((await mg('lineage', 'fraud-detector@1', '--upstream', '--json')).stdout);
    expect(up.edges.map((e: { relation: string }) => e.relation)).toEqual([
      'trainedOn',
      'fineTunedFrom',
    ]);
    const down = JSON.parse((await mg('lineage', 'fraud-base@1', '--downstream', '--json')).stdout);
    expect(down.edges).toMatchObject([
      { from: { model: 'fraud-detector', version: 1 }, relation: 'fineTunedFrom' },
    ]);
    const fromData = await mg('lineage', 'dataset:transactions', '--downstream');
    expect(fromData.stdout).toContain('fraud-detector@1  trainedOn  dataset:transactions');
  });

  it('manages users, service accounts and tokens; a revoked token stops working', async () => {
    const mg = (...args: string[]) => run(args, env);
    const user = await mg(
      'user',
      'create',
      'cli-ann',
      '--role',
      'contributor',
      '--team',
      'payments',
    );
    expect(user.code, user.stderr).toBe(0);
    expect(user.stdout).toMatch(/roles:\s+contributor/);
    const sa = await mg('service-account', 'create', 'cli-ci', '--owner', 'cli-ann');
    expect(sa.code).toBe(2); // --purpose is required
    expect(
      (
        await mg(
          'service-account',
          'create',
          'cli-ci',
          '--owner',
          'cli-ann',
          '--purpose',
          'CI scans',
        )
      ).code,
    ).toBe(0);
    const issued = await mg('token', 'create', 'cli-ann', '--name', 'laptop', '--json');
    expect(issued.code, issued.stderr).toBe(0);
    const { secret, token: tok } = JSON.parse(issued.stdout) as {
      secret: string;
      token: { id: string };
    };
    const asAnn = { ...env, MODELGATE_SERVER: server.url, MODELGATE_TOKEN: secret };
    const who = await run(['whoami'], asAnn);
    expect(who.stdout).toMatch(/name:\s+cli-ann/);
    // A contributor may not manage identities: refused, with the reason.
    const denied = await run(['identity', 'list'], asAnn);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/FORBIDDEN/);
    expect((await mg('identity', 'set', 'cli-ann', '--role', 'viewer')).stdout).toMatch(
      /roles:\s+viewer/,
    );
    // authz explain names the deciding rule; exit 1 on a denial.
    await mg('model', 'create', 'cli-fraud', '--owner', 'payments', '--risk-tier', 'high');
    const explained = await mg(
      'authz',
      'explain',
      '--as',
      'cli-ann',
      'setAlias',
      'alias:cli-fraud:production',
    );
    expect(explained.code).toBe(1);
    expect(explained.stdout).toMatch(/production-only-approvers/);
    const own = await run(['authz', 'explain', 'read', 'model:cli-fraud'], asAnn);
    expect(own.code, own.stderr).toBe(0);
    expect(own.stdout).toMatch(/^allow: user cli-ann may read on model cli-fraud \(viewer-read\)/);
    expect((await run(['authz', 'explain', '--as', 'admin', 'read', 'registry'], asAnn)).code).toBe(
      1,
    );
    // Teams, roles and operator policies from the command line.
    expect((await mg('team', 'add', 'risk', 'cli-ann')).stdout).toMatch(/teams:\s+payments, risk/);
    expect((await mg('team', 'list')).stdout).toMatch(/risk\s+cli-ann/);
    expect((await mg('team', 'remove', 'risk', 'cli-ann')).code).toBe(0);
    expect((await mg('role', 'grant', 'evaluator', 'cli-ann')).stdout).toMatch(
      /roles:\s+evaluator, viewer/,
    );
    const typo = await mg('role', 'grant', 'evalutor', 'cli-ann');
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(/no policy mentions the role evalutor/);
    expect((await mg('role', 'revoke', 'evaluator', 'cli-ann')).code).toBe(0);
    const lastAdmin = await mg('role', 'revoke', 'admin', 'admin');
    expect(lastAdmin.code).toBe(1);
    expect(lastAdmin.stderr).toMatch(/LAST_ADMIN/);
    expect((await mg('role', 'list')).stdout).toMatch(/contributor\s+yes\s+create models/);
    const policyFile = join(work, 'auditors.cedar');
    writeFileSync(
      policyFile,
      'permit (principal in Role::"auditor", action == Action::"read", resource);\n',
    );
    const added = await mg('authz', 'policy', 'add', 'auditors-read', policyFile);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/policy auditors-read in force \(sha256:[0-9a-f]{64}\)/);
    expect((await mg('role', 'list')).stdout).toMatch(
      /auditor\s+no\s+named by an operator policy\s+auditors-read/,
    );
    writeFileSync(
      policyFile,
      'permit (principal in Role::"auditor", action == Action::"reed", resource);\n',
    );
    const bad = await mg('authz', 'policy', 'add', 'auditors-read', policyFile);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/POLICY_INVALID/);
    expect((await mg('authz', 'policy', 'list')).stdout).toMatch(/auditors-read\s+api\s+admin/);
    expect((await mg('authz', 'policy', 'remove', 'auditors-read')).code).toBe(0);
    expect((await run(['token', 'revoke', tok.id], asAnn)).code).toBe(0);
    const after = await run(['whoami'], asAnn);
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/UNAUTHENTICATED/);
    // The server's log never holds a secret.
    expect(server.output()).not.toContain(secret);
  });

  it('exits 1 when the server refuses, 2 on usage and connection errors', async () => {
    const mg = (...args: string[]) => run(args, env);
    const missing = await mg('version', 'show', 'no-such-model@1');
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('error: MODEL_NOT_FOUND: model no-such-model not found');
    expect((await mg('model', 'create', 'Bad Name')).code).toBe(1);
    expect((await mg('model', 'frobnicate')).code).toBe(2);
    expect((await mg('push', join(work, 'does-not-exist'), '--model', 'fraud-base')).code).toBe(2);
    expect((await mg('alias', 'set', 'fraud-base', 'staging', 'one')).code).toBe(2);
    const down = await run(['model', 'list'], {
      ...env,
      MODELGATE_SERVER: 'http://127.0.0.1:9',
      MODELGATE_TOKEN: token,
    });
    expect(down.code).toBe(2);
    expect(down.stderr).toMatch(/cannot reach/);
  });

  it('shows a progress bar with bytes and rate on a terminal', async () => {
    const file = join(work, 'progress.bin');
    writeFileSync(file, randomBytes(8 * 1024 * 1024));
    // script(1) gives the CLI a pseudo-terminal, as a person at a shell would have.
    const cmd = `${process.execPath} ${CLI} push ${file} --model fraud-base`;
    const out = execFileSync('script', ['-qec', cmd, '/dev/null'], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    });
    expect(out).toMatch(/\[#+\.*\]\s+\d+% .*MiB\/8\.0 MiB .*\/s progress\.bin/);
    expect(out).toMatch(/pushed fraud-base@2 sha256:/);
  });
});
