// `npm run bench`: measures the registry against baselines taken in the same run, prints a
// table and writes bench/results/latest.json as [{name, value, unit, baseline, ratio}].
//
// Environment:
//   MODELGATE_BENCH_SIZE_MIB     size of the pushed file (default 1024)
//   MODELGATE_BENCH_RUNS         runs per push measurement (default 3)
//   MODELGATE_BENCH_ONLY         comma-separated subset of push,get,register,scan,authz,audit,gates,
//                                evidence
//                                (default all)
//   MODELGATE_BENCH_WHATIF_VERSIONS versions the what-if benchmark evaluates (default 100000)
//   MODELGATE_BENCH_AUDIT_EVENTS size of the log audit verify checks (default 1000000)
//   MODELGATE_BENCH_SCAN_PICKLE_MIB, MODELGATE_BENCH_SCAN_ZIP_MIB
//                                sizes of the scanned pickle (1024) and PyTorch zip (2048)
//   MODELGATE_BENCH_DATABASE_URL PostgreSQL server for the PostgreSQL figures (else
//                                MODELGATE_TEST_DATABASE_URL; skipped when neither is set)
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import Fastify from 'fastify';
import { FileReader } from '../src/evaluators/artifact-scan/byte-reader.js';
import { walkPickle } from '../src/evaluators/artifact-scan/pickle-walker.js';
import { issueToken } from '../src/identity/tokens.js';
import { Authorizer, type AuthzDecision } from '../src/policy/authz/authorizer.js';
import { BUILTIN_POLICIES } from '../src/policy/authz/builtin-policies.js';
import { compose } from '../src/server/composition.js';
import { loadConfig } from '../src/server/config.js';
import { openDatabase } from '../src/storage/database.js';
import { migrate } from '../src/storage/migrations.js';
import { createTemplate, dropDatabase, withDatabase } from '../src/storage/test-databases.js';
import { benchAudit, log, median } from './audit.js';
import { benchEvidence } from './evidence.js';
import { benchGates } from './gates.js';
import { benchRedteam } from './redteam.js';

interface Result {
  name: string;
  value: number;
  unit: string;
  baseline: number;
  ratio: number;
  note: string;
}

const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const SIZE_MIB = Number(process.env.MODELGATE_BENCH_SIZE_MIB ?? 1024);
const RUNS = Number(process.env.MODELGATE_BENCH_RUNS ?? 3);
const ONLY = new Set(
  (
    process.env.MODELGATE_BENCH_ONLY ?? 'push,get,register,scan,authz,audit,gates,evidence,redteam'
  ).split(','),
);
const SCAN_PICKLE_MIB = Number(process.env.MODELGATE_BENCH_SCAN_PICKLE_MIB ?? 1024);
const SCAN_ZIP_MIB = Number(process.env.MODELGATE_BENCH_SCAN_ZIP_MIB ?? 2048);
const PG_URL = process.env.MODELGATE_BENCH_DATABASE_URL || process.env.MODELGATE_TEST_DATABASE_URL;

function timeCommand(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    execFile(cmd, args, { env, maxBuffer: 16 * 1024 * 1024 }, (err, _out, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve((performance.now() - t) / 1000);
    });
  });
}

async function startServer(dataDir: string, token: string): Promise<{ url: string; stop(): void }> {
  const proc = spawn(process.execPath, [CLI, 'serve', '--data-dir', dataDir, '--port', '0'], {
    // No background scan: it would compete with the next measured run for the same cores.
    env: {
      ...process.env,
      MODELGATE_BOOTSTRAP_TOKEN: token,
      MODELGATE_LOG_LEVEL: 'info',
      MODELGATE_AUTO_SCAN: 'false',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /Server listening at (http:\/\/[0-9.]+:\d+)/.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    proc.once('exit', (c) => reject(new Error(`server exited with ${c}`)));
  });
  return { url, stop: () => proc.kill('SIGTERM') };
}

/** Push of one large file through the CLI vs `openssl dgst -sha256` of the same file. */
async function benchPush(results: Result[]): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'modelgate-bench-'));
  try {
    const file = join(work, 'model.bin');
    log(`generating a ${SIZE_MIB} MiB file...`);
    const fd = openSync(file, 'w');
    const block = Buffer.allocUnsafe(16 * 1024 * 1024);
    for (let left = SIZE_MIB * 1024 * 1024; left > 0; left -= block.length) {
      randomFillSync(block);
      writeSync(fd, block, 0, Math.min(left, block.length));
    }
    closeSync(fd);
    const token = issueToken().secret;
    const dataDir = join(work, 'data');
    const server = await startServer(dataDir, token);
    const env = {
      ...process.env,
      MODELGATE_SERVER: server.url,
      MODELGATE_TOKEN: token,
      MODELGATE_CONFIG: join(work, 'cfg.json'),
    };
    try {
      execFileSync(process.execPath, [CLI, 'model', 'create', 'bench-push'], { env });
      const times: Record<string, number[]> = { verify: [], noVerify: [], openssl: [] };
      await timeCommand('openssl', ['dgst', '-sha256', file]); // warm the page cache
      for (let i = 0; i < RUNS; i++) {
        // Each push stores a new blob: the previous run's copy is removed first.
        rmSync(join(dataDir, 'blobs', 'sha256'), { recursive: true, force: true });
        mkdirSync(join(dataDir, 'blobs', 'sha256'));
        times.verify?.push(
          await timeCommand(process.execPath, [CLI, 'push', file, '--model', 'bench-push'], env),
        );
        times.openssl?.push(await timeCommand('openssl', ['dgst', '-sha256', file]));
        rmSync(join(dataDir, 'blobs', 'sha256'), { recursive: true, force: true });
        mkdirSync(join(dataDir, 'blobs', 'sha256'));
        times.noVerify?.push(
          await timeCommand(
            process.execPath,
            [CLI, 'push', file, '--no-verify', '--model', 'bench-push'],
            env,
          ),
        );
        log(
          `  run ${i + 1}/${RUNS}: push ${times.verify?.at(-1)?.toFixed(2)} s, --no-verify ${times.noVerify?.at(-1)?.toFixed(2)} s, openssl ${times.openssl?.at(-1)?.toFixed(2)} s`,
        );
      }
      const mibs = (s: number[]) => SIZE_MIB / median(s);
      const base = mibs(times.openssl ?? []);
      results.push({
        name: `push ${SIZE_MIB} MiB via CLI (client digest checked)`,
        value: mibs(times.verify ?? []),
        unit: 'MiB/s',
        baseline: base,
        ratio: mibs(times.verify ?? []) / base,
        note: `baseline: openssl dgst -sha256 of the same file; median of ${RUNS}`,
      });
      results.push({
        name: `push ${SIZE_MIB} MiB via CLI --no-verify`,
        value: mibs(times.noVerify ?? []),
        unit: 'MiB/s',
        baseline: base,
        ratio: mibs(times.noVerify ?? []) / base,
        note: `baseline: openssl dgst -sha256 of the same file; median of ${RUNS}`,
      });
    } finally {
      server.stop();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function load(url: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(ROOT, 'bench', 'load.mjs'), url, token, '3000', '32'],
      (err, out) => {
        if (err) return reject(err);
        const r = JSON.parse(out) as { rps: number; errors: number };
        if (r.errors > 0) return reject(new Error(`${r.errors} failed requests against ${url}`));
        resolve(r.rps);
      },
    );
  });
}

/** Uploads one small blob and returns three version files that use it. */
async function seedFiles(app: Awaited<ReturnType<typeof compose>>['app'], token: string) {
  const blob = await app.inject({
    method: 'POST',
    url: '/api/v1/blobs',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    payload: Buffer.from('weights'),
  });
  const digest = (blob.json() as { digest: string }).digest;
  return ['config.json', 'model.safetensors', 'tokenizer.json'].map((path) => ({
    path,
    size: 7,
    digest,
  }));
}

/** GET of a version through the API vs a bare Fastify route returning the same JSON, one process. */
async function benchGet(results: Result[]): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'modelgate-bench-get-'));
  const token = issueToken().secret;
  const composed = await compose({ ...loadConfig({ dataDir }, {}), bootstrapToken: token });
  const bare = Fastify();
  try {
    const call = (method: 'GET' | 'POST', url: string, payload?: object) =>
      composed.app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${token}`, ...(payload ? {} : {}) },
        ...(payload && { payload }),
      });
    await call('POST', '/api/v1/models', { name: 'bench-get' });
    const files = await seedFiles(composed.app, token);
    await call('POST', '/api/v1/models/bench-get/versions', {
      files,
      card: { markdown: '# Bench\n', fields: {} },
    });
    const body = (await call('GET', '/api/v1/models/bench-get/versions/1')).json();
    bare.get('/v', async () => body);
    const apiUrl = await composed.app.listen({ port: 0, host: '127.0.0.1' });
    const bareUrl = await bare.listen({ port: 0, host: '127.0.0.1' });
    const api: number[] = [];
    const base: number[] = [];
    for (let i = 0; i < 3; i++) {
      base.push(await load(`${bareUrl}/v`, ''));
      api.push(await load(`${apiUrl}/api/v1/models/bench-get/versions/1`, token));
      log(
        `  round ${i + 1}/3: bare ${base.at(-1)?.toFixed(0)} req/s, API ${api.at(-1)?.toFixed(0)} req/s`,
      );
    }
    results.push({
      name: 'GET a version through the API',
      value: median(api),
      unit: 'req/s',
      baseline: median(base),
      ratio: median(api) / median(base),
      note: 'baseline: bare Fastify route returning the same JSON, same process; 32 connections, 3 s, median of 3',
    });
  } finally {
    await bare.close();
    await composed.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Allows everything without asking Cedar: the bench's "without authorization" side. */
class AllowAll extends Authorizer {
  override decide(): AuthzDecision {
    return { allowed: true, policies: [], errors: [], explanation: 'allow' };
  }
}

/**
 * What authorization costs: one Cedar decision (median and p99, in process) and the throughput
 * of GET a model with the built-in policies vs the same server allowing everything.
 */
async function benchAuthz(results: Result[]): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'modelgate-bench-authz-'));
  const token = issueToken().secret;
  const config = { ...loadConfig({ dataDir }, {}), bootstrapToken: token };
  const real = await compose(config);
  const open = await compose(config, { authorizer: new AllowAll(BUILTIN_POLICIES) });
  try {
    await real.app.inject({
      method: 'POST',
      url: '/api/v1/models',
      headers: { authorization: `Bearer ${token}` },
      payload: { name: 'bench-authz', ownerTeam: 'payments' },
    });
    const authorizer = new Authorizer(BUILTIN_POLICIES);
    const req = {
      principal: {
        kind: 'user' as const,
        name: 'ann',
        roles: ['contributor'],
        teams: ['payments'],
      },
      action: 'read' as const,
      resource: { kind: 'model' as const, name: 'bench-authz', team: 'payments', tier: 'minimal' },
    };
    // A new principal name each time: every decision goes to Cedar (none is remembered).
    const fresh = (i: number) => ({ ...req, principal: { ...req.principal, name: `u${i}` } });
    for (let i = 0; i < 2000; i++) authorizer.decide(fresh(-i - 1));
    const us: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      const r = fresh(i);
      const t = process.hrtime.bigint();
      authorizer.decide(r);
      us.push(Number(process.hrtime.bigint() - t) / 1000);
    }
    us.sort((a, b) => a - b);
    const p50 = us[us.length >> 1] ?? 0;
    const p99 = us[Math.floor(us.length * 0.99)] ?? 0;
    const realUrl = await real.app.listen({ port: 0, host: '127.0.0.1' });
    const openUrl = await open.app.listen({ port: 0, host: '127.0.0.1' });
    const withAuthz: number[] = [];
    const without: number[] = [];
    for (let i = 0; i < 3; i++) {
      without.push(await load(`${openUrl}/api/v1/models/bench-authz`, token));
      withAuthz.push(await load(`${realUrl}/api/v1/models/bench-authz`, token));
      log(
        `  round ${i + 1}/3: without ${without.at(-1)?.toFixed(0)} req/s, with ${withAuthz.at(-1)?.toFixed(0)} req/s`,
      );
    }
    results.push({
      name: 'one authorization decision evaluated by Cedar (prepared policies), median',
      value: p50,
      unit: 'µs',
      baseline: p99,
      ratio: p50 / p99,
      note: 'baseline column: the p99 of the same 20,000 decisions; in process',
    });
    results.push({
      name: 'GET a model with authorization',
      value: median(withAuthz),
      unit: 'req/s',
      baseline: median(without),
      ratio: median(withAuthz) / median(without),
      note: 'baseline: the same server and route with a policy that allows everything without Cedar; 32 connections, 3 s, median of 3',
    });
  } finally {
    await real.close();
    await open.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Versions registered per second through the API vs bare single-row insert transactions. */
async function benchRegister(results: Result[], engine: 'sqlite' | 'postgres'): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), `modelgate-bench-reg-${engine}-`));
  let pgName: string | undefined;
  let url: string | undefined;
  if (engine === 'postgres') {
    if (!PG_URL) {
      log(
        '  PostgreSQL figures skipped: set MODELGATE_BENCH_DATABASE_URL or MODELGATE_TEST_DATABASE_URL',
      );
      return;
    }
    pgName = await createTemplate(PG_URL);
    url = withDatabase(PG_URL, pgName);
  }
  const database = openDatabase({ dataDir, ...(url && { url }) });
  const token = issueToken().secret;
  try {
    await migrate(database);
    const composed = await compose(
      { ...loadConfig({ dataDir }, {}), bootstrapToken: token },
      { database },
    );
    const headers = { authorization: `Bearer ${token}` };
    await composed.app.inject({
      method: 'POST',
      url: '/api/v1/models',
      headers,
      payload: { name: 'bench-reg' },
    });
    const files = await seedFiles(composed.app, token);
    const n = 400;
    // Bare baseline: one single-row insert transaction per iteration, same engine, same durability.
    await database.db.schema
      .createTable('bench_bare')
      .ifNotExists()
      .addColumn('v', 'text')
      .execute();
    const reg: number[] = [];
    const bare: number[] = [];
    for (let round = 0; round < 3; round++) {
      let t = performance.now();
      for (let i = 0; i < n; i++) {
        await database.db.transaction().execute((trx) =>
          trx
            .insertInto('bench_bare' as never)
            .values({ v: `r${i}` } as never)
            .execute(),
        );
      }
      bare.push(n / ((performance.now() - t) / 1000));
      t = performance.now();
      for (let i = 0; i < n; i++) {
        const r = await composed.app.inject({
          method: 'POST',
          url: '/api/v1/models/bench-reg/versions',
          headers,
          payload: { files },
        });
        if (r.statusCode !== 201) throw new Error(`registration failed: ${r.body}`);
      }
      reg.push(n / ((performance.now() - t) / 1000));
      log(
        `  ${engine} round ${round + 1}/3: ${reg.at(-1)?.toFixed(0)} versions/s, bare insert ${bare.at(-1)?.toFixed(0)} tx/s`,
      );
    }
    results.push({
      name: `versions registered per second (${engine})`,
      value: median(reg),
      unit: 'versions/s',
      baseline: median(bare),
      ratio: median(reg) / median(bare),
      note: `baseline: bare single-row INSERT transactions on the same ${engine} database; 3 files per version, ${n} per round, median of 3`,
    });
    await composed.app.close();
  } finally {
    await database.close();
    if (pgName && PG_URL) await dropDatabase(PG_URL, pgName);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** A protocol-2 pickle of a long list of floats, batched 1000 a time as Python writes it. */
function writeFloatListPickle(path: string, mib: number): void {
  const fd = openSync(path, 'w');
  writeSync(fd, Buffer.from('\x80\x02]q\x00', 'latin1'));
  const batch = Buffer.alloc(2 + 1000 * 9);
  batch[0] = 0x28;
  for (let i = 0; i < 1000; i++) {
    batch[1 + i * 9] = 0x47; // BINFLOAT
    batch.writeDoubleBE(i * 0.5, 2 + i * 9);
  }
  batch[batch.length - 1] = 0x65; // APPENDS
  const block = Buffer.concat(Array(256).fill(batch));
  for (let w = 0; w < mib * 1024 * 1024; w += block.length) writeSync(fd, block);
  writeSync(fd, Buffer.from('.', 'latin1'));
  closeSync(fd);
}

/** A PyTorch-style zip checkpoint: data.pkl, stored tensor members of random bytes, a central directory. */
function writeTorchZip(path: string, mib: number): void {
  const fd = openSync(path, 'w');
  const central: Buffer[] = [];
  let offset = 0;
  const add = (name: string, chunks: () => Iterable<Buffer>, size: number) => {
    let crc = 0;
    for (const c of chunks()) crc = crc32(c, crc);
    const nameBuf = Buffer.from(name);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(size, 18);
    lh.writeUInt32LE(size, 22);
    lh.writeUInt16LE(nameBuf.length, 26);
    writeSync(fd, lh);
    writeSync(fd, nameBuf);
    for (const c of chunks()) writeSync(fd, c);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(size, 20);
    ch.writeUInt32LE(size, 24);
    ch.writeUInt16LE(nameBuf.length, 28);
    ch.writeUInt32LE(offset, 42);
    central.push(ch, nameBuf);
    offset += 30 + nameBuf.length + size;
  };
  const tensors = 16;
  const per = Math.floor((mib * 1024 * 1024) / tensors);
  // data.pkl: a dict of persistent-id tensor references, as torch.save writes them.
  const parts: Buffer[] = [Buffer.from('\x80\x02}q\x00(', 'latin1')];
  for (let i = 0; i < tensors; i++) {
    parts.push(Buffer.from(`X\x08\x00\x00\x00layer.${String(i).padStart(2, '0')}`, 'latin1'));
    parts.push(
      Buffer.from(`ctorch._utils\n_rebuild_tensor_v2\n(X\x07\x00\x00\x00storage\x85Q`, 'latin1'),
    );
    parts.push(Buffer.from('K\x00K\x01\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR', 'latin1'));
  }
  parts.push(Buffer.from('u.', 'latin1'));
  const pkl = Buffer.concat(parts);
  add('archive/data.pkl', () => [pkl], pkl.length);
  const block = Buffer.allocUnsafe(16 * 1024 * 1024);
  randomFillSync(block);
  for (let t = 0; t < tensors; t++) {
    const gen = function* () {
      for (let left = per; left > 0; left -= block.length)
        yield block.subarray(0, Math.min(left, block.length));
    };
    add(`archive/data/${t}`, gen, per);
  }
  add('archive/version', () => [Buffer.from('3\n')], 2);
  const cd = Buffer.concat(central);
  writeSync(fd, cd);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(tensors + 2, 8);
  end.writeUInt16LE(tensors + 2, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  writeSync(fd, end);
  closeSync(fd);
}

/** Runs `modelgate scan` under /usr/bin/time; returns seconds and peak RSS in MiB. */
function timeScan(file: string): Promise<{ secs: number; peakMiB: number }> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    execFile(
      '/usr/bin/time',
      ['-f', '%M', process.execPath, CLI, 'scan', file, '--format', 'json'],
      { maxBuffer: 64 * 1024 * 1024 },
      (err, _out, stderr) => {
        const secs = (performance.now() - t) / 1000;
        // Exit 1 means findings were reported: a measured run all the same.
        if (err && (err as { code?: number }).code !== 1)
          return reject(new Error(`scan failed: ${stderr}`));
        const kb = Number(stderr.trim().split('\n').at(-1));
        resolve({ secs, peakMiB: kb / 1024 });
      },
    );
  });
}

/** Seconds the static opcode walk alone takes over a pickle file, read through the scanner's reader. */
function timeWalk(file: string): number {
  const reader = FileReader.open(file, statSync(file).size);
  try {
    const t = performance.now();
    const w = walkPickle(reader);
    if (w.pickles < 1) throw new Error('the bench pickle did not parse');
    return (performance.now() - t) / 1000;
  } finally {
    reader.close();
  }
}

/** The artifact scanner on a big numeric pickle and a big PyTorch zip, against openssl on the same files. */
async function benchScan(results: Result[]): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'modelgate-bench-scan-'));
  try {
    const cases: [string, string, number, (p: string, m: number) => void][] = [
      ['pickle of float lists', join(work, 'floats.pkl'), SCAN_PICKLE_MIB, writeFloatListPickle],
      ['PyTorch zip checkpoint', join(work, 'checkpoint.pt'), SCAN_ZIP_MIB, writeTorchZip],
    ];
    for (const [label, file, mib, make] of cases) {
      log(`  writing a ${mib} MiB ${label}...`);
      make(file, mib);
      await timeCommand('openssl', ['dgst', '-sha256', file]);
      const scans: number[] = [];
      const ssl: number[] = [];
      const walks: number[] = [];
      let peak = 0;
      for (let i = 0; i < RUNS; i++) {
        const s = await timeScan(file);
        scans.push(s.secs);
        peak = Math.max(peak, s.peakMiB);
        ssl.push(await timeCommand('openssl', ['dgst', '-sha256', file]));
        if (make === writeFloatListPickle) walks.push(timeWalk(file));
        log(
          `  ${label} run ${i + 1}/${RUNS}: scan ${s.secs.toFixed(2)} s (peak ${s.peakMiB.toFixed(0)} MiB), openssl ${ssl.at(-1)?.toFixed(2)} s`,
        );
      }
      const mbs = (x: number[]) => (mib * 1.048576) / median(x);
      results.push({
        name: `scan a ${mib} MiB ${label} (hashing included)`,
        value: mbs(scans),
        unit: 'MB/s',
        baseline: mbs(ssl),
        ratio: mbs(scans) / mbs(ssl),
        note: `baseline: openssl dgst -sha256 of the same file; whole CLI process; peak RSS ${peak.toFixed(0)} MiB; median of ${RUNS}`,
      });
      if (walks.length > 0)
        results.push({
          name: `pickle opcode walk alone, same ${mib} MiB file (in process, no hashing)`,
          value: mbs(walks),
          unit: 'MB/s',
          baseline: mbs(ssl),
          ratio: mbs(walks) / mbs(ssl),
          note: `baseline: openssl dgst -sha256 of the same file; median of ${RUNS}`,
        });
      rmSync(file, { force: true });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Latency of one evaluator scan of a small pickle, the common case of a push: a scan in the
 * kept thread against a scan that starts its thread first (a fresh evaluator each time, as every
 * scan did before), alternating, on the built code (the thread runs compiled JavaScript).
 */
async function benchScanLatency(results: Result[]): Promise<void> {
  const { ArtifactScanEvaluator } = (await import(
    join(
      import.meta.dirname,
      '..',
      'dist',
      'evaluators',
      'artifact-scan',
      'artifact-scan-evaluator.js',
    )
  )) as typeof import('../src/evaluators/artifact-scan/artifact-scan-evaluator.js');
  const work = mkdtempSync(join(tmpdir(), 'modelgate-bench-scanlat-'));
  try {
    const file = join(work, 'small.pkl');
    // protocol 2: PROTO, EMPTY_DICT, STOP
    writeFileSync(file, Buffer.from([0x80, 0x02, 0x7d, 0x2e]));
    const input = {
      version: {} as never,
      files: [{ name: 'small.pkl', path: file }],
      config: {},
      progress: () => {},
      signal: new AbortController().signal,
    } as unknown as Parameters<InstanceType<typeof ArtifactScanEvaluator>['run']>[0];
    const kept = new ArtifactScanEvaluator();
    await kept.run(input);
    const fresh: number[] = [];
    const reused: number[] = [];
    const N = 40;
    for (let i = 0; i < N; i++) {
      const once = new ArtifactScanEvaluator();
      let t0 = performance.now();
      await once.run(input);
      fresh.push(performance.now() - t0);
      await once.close();
      t0 = performance.now();
      await kept.run(input);
      reused.push(performance.now() - t0);
    }
    results.push({
      name: 'evaluator scan of a 4-byte pickle, thread kept between scans',
      value: median(reused),
      unit: 'ms',
      baseline: median(fresh),
      ratio: median(reused) / median(fresh),
      note: `baseline: the same scan starting its own thread (one per scan, as before); alternating, median of ${N}`,
    });
    await kept.close();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const results: Result[] = [];
log(`modelgate bench on ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
if (ONLY.has('push')) {
  log('push through the CLI:');
  await benchPush(results);
}
if (ONLY.has('get')) {
  log('GET a version:');
  await benchGet(results);
}
if (ONLY.has('scan')) {
  log('scan model files:');
  await benchScanLatency(results);
  await benchScan(results);
}
if (ONLY.has('authz')) {
  log('authorization:');
  await benchAuthz(results);
}
if (ONLY.has('register')) {
  log('register versions:');
  await benchRegister(results, 'sqlite');
  await benchRegister(results, 'postgres');
}
if (ONLY.has('audit')) {
  log('audit log:');
  await benchAudit(results, { pgUrl: PG_URL, cli: CLI });
}
if (ONLY.has('evidence')) {
  log('evidence:');
  await benchEvidence(results);
}
if (ONLY.has('gates')) {
  log('release gates:');
  await benchGates(results, { pgUrl: PG_URL });
}
if (ONLY.has('redteam')) {
  log('red-team evaluator:');
  await benchRedteam(results);
}

mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(
  join(ROOT, 'bench', 'results', 'latest.json'),
  `${JSON.stringify(
    results.map(({ name, value, unit, baseline, ratio }) => ({
      name,
      value,
      unit,
      baseline,
      ratio,
    })),
    null,
    2,
  )}\n`,
);
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(2));
const rows = results.map((r) => [
  r.name,
  `${fmt(r.value)} ${r.unit}`,
  `${fmt(r.baseline)} ${r.unit === 'versions/s' ? 'tx/s' : r.unit}`,
  r.ratio.toFixed(2),
]);
const widths = [0, 1, 2, 3].map((i) =>
  Math.max(
    ...[['benchmark', 'value', 'baseline', 'ratio'], ...rows].map((r) => (r[i] ?? '').length),
  ),
);
for (const r of [['benchmark', 'value', 'baseline', 'ratio'], ...rows]) {
  console.log(
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  '),
  );
}
for (const r of results) console.log(`- ${r.name}: ${r.note}`);
console.log('wrote bench/results/latest.json');
