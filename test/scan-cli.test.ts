import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ajvDraft04 from 'ajv-draft-04';
import { describe, expect, it } from 'vitest';
import { CLI } from './helpers/server-process.js';

const CORPUS = join(import.meta.dirname, 'corpus');
const mal = (n: string) => join(CORPUS, 'malicious', n);
const ben = (n: string) => join(CORPUS, 'benign', n);

function scan(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, 'scan', ...args],
      { maxBuffer: 32 * 1024 * 1024 },
      (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

describe('modelgate scan', () => {
  it('exits 1 on a finding at or above --fail-on, 0 below it, 2 when it cannot scan', async () => {
    expect((await scan(mal('direct-os.system.pkl'))).code).toBe(1);
    expect((await scan(ben('plain-data-protocol4.pkl'))).code).toBe(0);
    // HDF5 files are read in a thread of their own, which must not keep the process alive.
    expect((await scan(ben('keras2-dense.h5'), ben('onnx-external-data'))).code).toBe(0);
    expect((await scan(mal('keras2-lambda-bytecode.h5'))).code).toBe(1);
    // An unknown callable is high: fails at the default (high), passes with --fail-on critical.
    expect((await scan(mal('unknown-callable-called.pkl'))).code).toBe(1);
    expect((await scan(mal('unknown-callable-called.pkl'), '--fail-on', 'critical')).code).toBe(0);
    // A merely unexpected, uncalled global is medium.
    const missing = await scan(join(CORPUS, 'no-such-file.pkl'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read .*no such file/);
    expect((await scan(mal('direct-os.system.pkl'), '--format', 'xml')).code).toBe(2);
    expect((await scan(mal('direct-os.system.pkl'), '--fail-on', 'info')).code).toBe(2);
    expect((await scan()).code).toBe(2);
  });

  it('prints a readable table with a summary', async () => {
    const r = await scan(mal('torch-zip-hidden-member.pt'));
    expect(r.stdout).toMatch(
      /CRITICAL\s+pickle\.unsafe-global\/os\.system\s+torch-zip-hidden-member\.pt:archive\/extra\/\.cache@\d+/,
    );
    expect(r.stdout).toMatch(/scanned 1 file\(s\): 1 critical/);
  });

  it('prints JSON with files, hashes and findings', async () => {
    const r = await scan(
      mal('nested-base64-string.pkl'),
      ben('ordered-dict.pkl'),
      '--format',
      'json',
    );
    const report = JSON.parse(r.stdout);
    expect(report.scanner.id).toBe('modelgate-artifact-scan');
    expect(report.files.map((f: { path: string }) => f.path)).toEqual([
      'nested-base64-string.pkl',
      'ordered-dict.pkl',
    ]);
    expect(report.files[0].sha256).toMatch(/^[0-9a-f]{64}$/);
    const rules = report.findings.map((f: { ruleId: string }) => f.ruleId);
    expect(rules).toContain('pickle.embedded-pickle');
    expect(rules).toContain('pickle.unsafe-global/os.system');
  });

  it('writes SARIF 2.1.0 that validates against the schema', async () => {
    const schema = JSON.parse(
      readFileSync(join(import.meta.dirname, 'fixtures', 'sarif-2.1.0.schema.json'), 'utf8'),
    );
    const validate = new ajvDraft04.default({
      allErrors: true,
      strict: false,
      unicodeRegExp: false,
    }).compile(schema);
    // The validator is real: a log without a driver is refused.
    expect(validate({ version: '2.1.0', runs: [{ tool: {} }] })).toBe(false);
    const r = await scan(join(CORPUS, 'malicious'), '--format', 'sarif');
    expect(r.code).toBe(1);
    const sarif = JSON.parse(r.stdout);
    const ok = validate(sarif);
    expect(validate.errors ?? [], JSON.stringify(validate.errors?.slice(0, 3))).toEqual([]);
    expect(ok).toBe(true);
    const run = sarif.runs[0];
    expect(run.tool.driver.rules.length).toBeGreaterThan(5);
    for (const rule of run.tool.driver.rules)
      expect(Number(rule.properties['security-severity'])).toBeGreaterThanOrEqual(0);
    const member = run.results.find(
      (x: { locations: { physicalLocation: { artifactLocation: { uri: string } } }[] }) =>
        x.locations[0]?.physicalLocation.artifactLocation.uri.endsWith('archive/extra/.cache'),
    );
    expect(member).toBeDefined();
    const artifact = run.artifacts[member.locations[0].physicalLocation.artifactLocation.index];
    expect(run.artifacts[artifact.parentIndex].hashes['sha-256']).toMatch(/^[0-9a-f]{64}$/);
  });
});
