import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { parseImport } from '../src/evaluators/imports/parse-import.js';
import { apiOf, testApp, tokenFor } from './helpers/app.js';
import { cliOf } from './helpers/cli.js';
import { describeEachEngine } from './helpers/engines.js';
import { CORPUS, pushFile } from './helpers/versions.js';

const SAMPLES = join(import.meta.dirname, 'fixtures', 'imports');
const FILES = {
  garak: 'garak-report.jsonl',
  promptfoo: 'promptfoo-results.json',
  sarif: 'sarif-log.sarif',
  modelgate: 'modelgate-result.json',
} as const;

describeEachEngine('importing evaluation results', (db) => {
  it('imports each format from the command line, attributed to the importer and the tool, and refuses broken files precisely', async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    expect(
      (await api('POST', '/models', { name: 'imp-bot', ownerTeam: 'llm', riskTier: 'limited' }))
        .statusCode,
    ).toBe(201);
    await pushFile(t, 'imp-bot', join(CORPUS, 'benign', 'model.safetensors'));
    const eve = await tokenFor(t, {
      name: 'imp-eve',
      kind: 'user',
      roles: ['evaluator'],
      teams: ['llm'],
    });
    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const mg = cliOf(url, eve);

    for (const [format, file] of Object.entries(FILES)) {
      const text = readFileSync(join(SAMPLES, file), 'utf8');
      const expected = parseImport(format as keyof typeof FILES, text);
      const r = await mg(
        'evaluation',
        'import',
        'imp-bot@1',
        '--format',
        format,
        join(SAMPLES, file),
        '--json',
      );
      expect(r.code, r.out).toBe(0);
      const e = JSON.parse(r.out) as {
        id: string;
        status: string;
        requestedBy: string;
        evaluator: { id: string; version: string };
        config: { imported: { format: string; tool: string; sha256: string; filename: string } };
        metrics: Record<string, number>;
        findings: { ruleId: string; severity: string; title: string }[];
      };
      expect(e.status).toBe('succeeded');
      expect(e.requestedBy).toBe('imp-eve');
      expect(e.config.imported).toMatchObject({ format, tool: expected.tool.name, filename: file });
      expect(e.evaluator.version).toBe(expected.tool.version);
      expect(e.evaluator.id).toMatch(/^import\/[a-z][a-z0-9-]+$/);
      expect(e.metrics).toEqual(expected.metrics);
      expect(e.findings.map((f) => [f.ruleId, f.severity, f.title])).toEqual(
        expected.findings.map((f) => [f.ruleId, f.severity, f.title]),
      );
      expect(e.findings.length, format).toBeGreaterThan(0);
    }
    // The findings are the version's, where gates see them.
    const all = (await api('GET', '/models/imp-bot/versions/1/findings')).json().items as {
      ruleId: string;
    }[];
    for (const prefix of ['garak/', 'promptfoo/', 'sarif/'])
      expect(
        all.some((f) => f.ruleId.startsWith(prefix)),
        prefix,
      ).toBe(true);
    // The import is in the audit log, under the importer's name.
    const size = (await api('GET', '/audit/events?limit=1')).json().size as number;
    const events = (
      await api('GET', `/audit/events?from=${Math.max(0, size - 20)}&limit=20`)
    ).json().items as { actor: string; action: string }[];
    expect(
      events.filter((x) => x.action === 'evaluation.import' && x.actor === 'imp-eve'),
    ).toHaveLength(4);

    // Broken files: refused with the line or path, nothing stored.
    const before = (await api('GET', '/models/imp-bot/versions/1/evaluations')).json().items.length;
    const dir = mkdtempSync(join(tmpdir(), 'mg-imports-'));
    const garak = readFileSync(join(SAMPLES, FILES.garak), 'utf8').split('\n');
    garak[4] = '{"entry_type": "eval", "detector": "x"';
    writeFileSync(join(dir, 'bad.jsonl'), garak.join('\n'));
    const bad = await mg(
      'evaluation',
      'import',
      'imp-bot@1',
      '--format',
      'garak',
      join(dir, 'bad.jsonl'),
    );
    expect(bad.code).not.toBe(0);
    expect(bad.out).toMatch(/IMPORT_INVALID|line 5/);
    expect(bad.out).toMatch(/line 5/);
    const sarif = JSON.parse(readFileSync(join(SAMPLES, FILES.sarif), 'utf8'));
    sarif.version = '2.0.0';
    writeFileSync(join(dir, 'bad.sarif'), JSON.stringify(sarif));
    const wrong = await mg(
      'evaluation',
      'import',
      'imp-bot@1',
      '--format',
      'sarif',
      join(dir, 'bad.sarif'),
    );
    expect(wrong.code).not.toBe(0);
    expect(wrong.out).toMatch(/version/);
    const mixed = await mg(
      'evaluation',
      'import',
      'imp-bot@1',
      '--format',
      'garak',
      join(SAMPLES, FILES.sarif),
    );
    expect(mixed.code).not.toBe(0);
    expect(mixed.out).toMatch(/looks like a SARIF log/);
    const unknown = await mg(
      'evaluation',
      'import',
      'imp-bot@1',
      '--format',
      'csv',
      join(SAMPLES, FILES.sarif),
    );
    expect(unknown.code).toBe(2);
    expect(unknown.out).toMatch(/--format must be one of garak, promptfoo, sarif, modelgate/);
    expect((await api('GET', '/models/imp-bot/versions/1/evaluations')).json().items).toHaveLength(
      before,
    );
    await t.composed.app.close();
  });

  it("never lets an imported result pass for one of the server's own evaluators", async () => {
    const t = await testApp(db());
    const api = apiOf(t);
    await api('POST', '/models', { name: 'imp-fake', ownerTeam: 'llm', riskTier: 'limited' });
    await pushFile(t, 'imp-fake', join(CORPUS, 'benign', 'model.safetensors'));
    const r = await api('POST', '/models/imp-fake/versions/1/evaluation-imports', {
      format: 'modelgate',
      content: JSON.stringify({
        schema: 'modelgate.dev/evaluation-result/v1',
        tool: { name: 'artifact-scan', version: '1.0.0' },
        findings: [],
        metrics: {},
      }),
    });
    expect(r.statusCode, r.body).toBe(201);
    expect(r.json().evaluator.id).toBe('import/artifact-scan');
    // The staging gate wants a successful artifact scan: an imported one does not count.
    const policy = `apiVersion: modelgate.dev/v1
kind: GatePolicy
metadata: {name: imp-gate}
spec:
  bindings: {aliases: [production]}
  validations:
    - name: scanned
      expression: evaluations.exists(e, e.evaluator == 'artifact-scan' && e.status == 'succeeded')
      message: not scanned
      reason: MissingEvidence
      action: deny
`;
    const wi = await api('POST', '/gate-policies/what-if', { document: policy, allVersions: true });
    expect(
      (wi.json().failing as { model: string }[]).filter((f) => f.model === 'imp-fake'),
    ).toHaveLength(1);
    await t.composed.app.close();
  });
});
