import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { apiOf, type TestApp, testApp, tokenFor, uploadBlob } from './helpers/app.js';
import { cliOf } from './helpers/cli.js';
import { describeEachEngine } from './helpers/engines.js';
import { seedPortfolio } from './helpers/portfolio.js';
import { CORPUS, FULL_CARD, pushFile, waitForScans } from './helpers/versions.js';

const CARD = FULL_CARD;
const push = (t: TestApp, model: string, file: string, token?: string) =>
  pushFile(t, model, file, token ? { token } : {});
const scanned = waitForScans;

const benign = () =>
  join(CORPUS, 'benign', readdirSync(join(CORPUS, 'benign')).find((f) => f.endsWith('.pkl')) ?? '');

describeEachEngine('promotions through gates', (db) => {
  it('denies a malicious pickle with the finding, passes after a waiver and two independent approvals, and replays', async () => {
    const t = await testApp(db(), { gatePack: true, worker: true });
    const api = apiOf(t);
    expect(
      (await api('POST', '/models', { name: 'fraud', ownerTeam: 'fraud', riskTier: 'high' }))
        .statusCode,
    ).toBe(201);
    // ann builds models and may also approve (not her own); rik, ada and bob approve for risk.
    const ann = await tokenFor(t, {
      name: 'ann',
      kind: 'user',
      roles: ['contributor', 'approver'],
      teams: ['fraud', 'risk'],
    });
    const rik = await tokenFor(t, {
      name: 'rik',
      kind: 'user',
      roles: ['approver'],
      teams: ['risk'],
    });
    const ada = await tokenFor(t, {
      name: 'ada',
      kind: 'user',
      roles: ['approver'],
      teams: ['risk'],
    });
    const bob = await tokenFor(t, {
      name: 'bob',
      kind: 'user',
      roles: ['approver'],
      teams: ['risk'],
    });
    const v = await push(t, 'fraud', join(CORPUS, 'malicious', 'direct-os.system.pkl'), ann);
    await scanned(t, 'fraud', v.number);

    // The plain alias route cannot move a protected alias, not even for an admin.
    const plain = await api('PUT', '/models/fraud/aliases/staging', { version: v.number });
    expect(plain.statusCode).toBe(409);
    expect(plain.json().code).toBe('ALIAS_PROTECTED');

    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const asRik = cliOf(url, rik);
    // 1. Denied, with the scanner's finding in the message.
    const denied = await asRik('promote', `fraud@${v.number}`, '--to', 'production');
    expect(denied.code, denied.out).toBe(1);
    expect(denied.out).toMatch(/denied: fraud@1 for production \(decision \d+\)/);
    expect(denied.out).toMatch(
      /FAIL\s+production-gate\/no-unwaived-critical-high: \d+ unwaived critical\/high finding\(s\): critical \S+ .*os/i,
    );
    expect((await api('GET', '/models/fraud/aliases')).json().items).toEqual([]);

    // 2. A waiver by an approver accepts the findings; the author may not waive her own.
    const findings = (await api('GET', `/models/fraud/versions/${v.number}/findings`)).json()
      .items as { ruleId: string; severity: string }[];
    const rules = [
      ...new Set(
        findings.filter((f) => ['critical', 'high'].includes(f.severity)).map((f) => f.ruleId),
      ),
    ];
    expect(rules.length).toBeGreaterThan(0);
    const waive = (rule: string, token: string) =>
      api(
        'POST',
        `/models/fraud/versions/${v.number}/waivers`,
        {
          findingRule: rule,
          justification: 'sandboxed loader; reviewed by security',
          expiresAt: new Date(Date.now() + 7 * 86_400_000).toISOString(),
        },
        token,
      );
    const own = await waive(rules[0]!, ann);
    expect(own.statusCode).toBe(403);
    expect(own.json().message).toMatch(/no-self-waiver/);
    const waiverIds: number[] = [];
    for (const rule of rules) {
      const w = await waive(rule, ada);
      expect(w.statusCode, w.body).toBe(201);
      waiverIds.push(w.json().id);
    }

    // 3. Now only approvals are missing: the request waits (exit 3).
    const pending = await asRik('promote', `fraud@${v.number}`, '--to', 'production');
    expect(pending.code, pending.out).toBe(3);
    const requestId = Number(/request (\d+) waits for approvals/.exec(pending.out)?.[1]);
    expect(pending.out).toMatch(
      /FAIL\s+production-gate\/independent-approvals: a high-risk model needs 2 approvals/,
    );

    // 4. Separation of duties: the author, the requester and the scanner's requester are refused.
    const review = (token: string, decision = 'approve') =>
      api(
        'POST',
        `/models/fraud/aliases/production/promotion-requests/${requestId}/reviews`,
        { decision, comment: 'checked the model card and the waiver' },
        token,
      );
    const byAuthor = await review(ann);
    expect(byAuthor.statusCode).toBe(403);
    expect(byAuthor.json().message).toMatch(/no-self-approval/);
    const byRequester = await review(rik);
    expect(byRequester.statusCode).toBe(403);
    expect(byRequester.json()).toMatchObject({ code: 'SEPARATION_OF_DUTIES' });
    expect(byRequester.json().message).toMatch(/rik is the requester/);

    // 5. Two independent approvals move the alias; the first alone does not.
    const first = await review(ada);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json().status).toBe('pending');
    expect((await review(ada)).json().code).toBe('ALREADY_REVIEWED');
    const asBob = cliOf(url, bob);
    const second = await asBob(
      'request',
      'approve',
      String(requestId),
      '--comment',
      'two sets of eyes',
    );
    expect(second.code, second.out).toBe(0);
    expect(second.out).toMatch(/promoted: fraud@1 -> production \(decision (\d+)/);
    const decisionId = Number(/decision (\d+)/.exec(second.out)?.[1]);
    const alias = (await api('GET', '/models/fraud/aliases/production')).json();
    expect(alias).toMatchObject({ version: v.number, updatedBy: 'bob' });

    // The decision lists the waivers it relied on, the policy version, digest and engine.
    const d = (await api('GET', `/decisions/${decisionId}`)).json();
    expect(d).toMatchObject({ outcome: 'allow', moved: true, kind: 'promotion', requestId });
    expect(d.waivers.map(Number).sort()).toEqual(waiverIds.sort());
    expect(d.policies).toEqual([
      expect.objectContaining({ name: 'production-gate', version: 1, outcome: 'allow' }),
    ]);
    expect(d.engine).toMatch(/^@marcbachmann\/cel-js@\d+\.\d+\.\d+$/);
    expect(d.facts.approvals.map((a: { approver: string }) => a.approver)).toEqual(['ada', 'bob']);
    // A rejected earlier attempt and the denials stay on record.
    const all = (await api('GET', '/promotion-requests?model=fraud')).json().items as {
      state: string;
    }[];
    expect(all.map((r) => r.state).sort()).toEqual(['denied', 'promoted']);

    // 6. Replayed by the CLI from the stored facts and policy: the same outcome.
    const replay = await asBob('decision', 'replay', String(decisionId));
    expect(replay.code, replay.out).toBe(0);
    expect(replay.out).toMatch(new RegExp(`^same: decision ${decisionId} replays to allow`));
    const deniedId = Number(/decision (\d+)/.exec(denied.out)?.[1]);
    const replayDenied = await asBob('decision', 'replay', String(deniedId));
    expect(replayDenied.out).toMatch(/^same: .* replays to deny/);

    // The move, the decision and the review are each in the audit log.
    await t.composed.deps.audit.signLatest();
    const events = await sql<{ action: string; subject: string }>`
      SELECT action, subject FROM audit_events WHERE subject LIKE ${'%fraud%'} ORDER BY seq`.execute(
      t.composed.database.db,
    );
    const actions = events.rows.map((e) => `${e.action} ${e.subject}`);
    expect(actions).toContain('alias.promote alias:fraud:production');
    expect(actions).toContain(`gate.decision decision:fraud:production/${decisionId}`);
    expect(actions).toContain(`promotion.approve request:fraud:production/${requestId}`);
    expect(actions).toContain(`promotion.promoted request:fraud:production/${requestId}`);
    // Decisions are immutable in the database itself.
    await expect(
      sql`UPDATE gate_decisions SET outcome = 'deny' WHERE id = ${decisionId}`.execute(
        t.composed.database.db,
      ),
    ).rejects.toThrow(/GATE_DECISION_IMMUTABLE/);
    await t.composed.deps.runner.stop();
    await t.composed.app.close();
  });

  it('answers verify before and after a promotion and after an automatic demotion', async () => {
    const t = await testApp(db(), { worker: true });
    const api = apiOf(t);
    const demoting = readFileSync(
      join(import.meta.dirname, '..', 'policies', 'staging-gate.yaml'),
      'utf8',
    )
      .replace('name: staging-gate', 'name: staging-demote')
      .replace('spec:\n', 'spec:\n  demoteOnFailure: true\n');
    expect((await api('POST', '/gate-policies', { document: demoting })).statusCode).toBe(201);
    await api('POST', '/models', { name: 'churn', ownerTeam: 'growth', riskTier: 'limited' });
    const v1 = await push(t, 'churn', benign());
    const v2 = await push(t, 'churn', join(CORPUS, 'malicious', 'direct-os.system.pkl'));
    await scanned(t, 'churn', v1.number);
    await scanned(t, 'churn', v2.number);
    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const mg = cliOf(url, t.token);
    const verify = (n: { digest: string }) => mg('verify', 'churn@staging', '--digest', n.digest);

    // Before: no alias, nothing approved.
    const before = await verify(v1);
    expect(before.code).toBe(1);
    expect(before.out).toMatch(/NOT approved: churn has no alias staging/);
    expect((await mg('promote', 'churn@1', '--to', 'staging')).code).toBe(0);
    const ok = await verify(v1);
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toMatch(/approved: churn@1 was promoted to staging by decision \d+/);
    expect((await verify(v2)).out).toMatch(/NOT approved: churn@staging is version 1/);

    // v2 passes while a model-wide waiver covers its findings; revoking it later flags v2.
    const rules = [
      ...new Set(
        (
          (await api('GET', `/models/churn/versions/${v2.number}/findings`)).json().items as {
            ruleId: string;
            severity: string;
          }[]
        )
          .filter((f) => f.severity === 'critical')
          .map((f) => f.ruleId),
      ),
    ];
    const waivers: number[] = [];
    // The admin pushed and requested: an approver with no part in the work waives.
    const rik = await tokenFor(t, {
      name: 'rik',
      kind: 'user',
      roles: ['approver'],
      teams: ['risk'],
    });
    for (const rule of rules) {
      const w = await api(
        'POST',
        '/models/churn/waivers',
        {
          findingRule: rule,
          justification: 'temporary: replaced next sprint',
          expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
        },
        rik,
      );
      expect(w.statusCode, w.body).toBe(201);
      waivers.push(w.json().id);
    }
    // A model-wide waiver is one signed statement naming every version it covers now.
    const waived = (await api('GET', '/models/churn/versions/1/attestations'))
      .json()
      .items.filter((a: { kind: string }) => a.kind === 'waiver') as {
      envelope: { payload: string };
    }[];
    expect(waived.length).toBeGreaterThan(0);
    const stmt = JSON.parse(Buffer.from(waived[0]!.envelope.payload, 'base64').toString());
    expect(stmt.subject.map((x: { name: string }) => x.name)).toEqual(['churn@1', 'churn@2']);
    expect(stmt.predicate).toMatchObject({ version: null, model: 'churn' });
    const p2 = await mg('promote', 'churn@2', '--to', 'staging');
    expect(p2.code, p2.out).toBe(0);
    expect((await verify(v2)).code).toBe(0);
    for (const id of waivers) await mg('waiver', 'revoke', 'churn', String(id));

    // The re-check finds v2 no longer passing and, as the policy says, demotes to v1.
    const recheck = await mg('policy', 'recheck');
    expect(recheck.code, recheck.out).toBe(0);
    expect(recheck.out).toMatch(/flagged: churn@2 under staging/);
    expect(recheck.out).toMatch(/demoted: churn@staging 2 -> 1 \(decision (\d+)\)/);
    const after2 = await verify(v2);
    expect(after2.code).toBe(1);
    const after1 = await verify(v1);
    expect(after1.code, after1.out).toBe(0);
    const demotion = Number(/decision (\d+)/.exec(after1.out)?.[1]);
    const d = (await api('GET', `/decisions/${demotion}`)).json();
    expect(d).toMatchObject({ kind: 'demotion', outcome: 'allow', moved: true, version: 1 });
    expect((await mg('decision', 'replay', String(demotion))).code).toBe(0);
    // A second pass changes nothing.
    expect((await api('POST', '/gate-rechecks')).json()).toMatchObject({
      flagged: [],
      demoted: [],
      cleared: [],
    });
    await t.composed.deps.runner.stop();
    await t.composed.app.close();
  });
});

describeEachEngine('what-if over the portfolio', (db) => {
  it('lists exactly the current holders the shipped production gate would refuse, and why', async () => {
    const t = await testApp(db(), { worker: true });
    const api = apiOf(t);
    // Today's gate: one approval, nothing else. The shipped pack is the draft.
    const lenient = `apiVersion: modelgate.dev/v1
kind: GatePolicy
metadata: {name: wi-lenient}
spec:
  bindings: {aliases: [production]}
  validations:
    - name: approved
      expression: "approvals.exists(a, a.decision == 'approve')"
      message: needs an approval
      reason: Approvals
      action: deny
`;
    expect((await api('POST', '/gate-policies', { document: lenient })).statusCode).toBe(201);
    const ada = await tokenFor(t, {
      name: 'wi-ada',
      kind: 'user',
      roles: ['approver'],
      teams: ['risk'],
    });
    const full = CARD;
    const cases = [
      { name: 'wi-clean', tier: 'limited', file: benign(), card: full },
      {
        name: 'wi-evil',
        tier: 'limited',
        file: join(CORPUS, 'malicious', 'direct-os.system.pkl'),
        card: full,
      },
      { name: 'wi-nocard', tier: 'limited', file: benign(), card: { intendedUse: 'x' } },
      { name: 'wi-high', tier: 'high', file: benign(), card: full },
    ];
    for (const c of cases) {
      await api('POST', '/models', { name: c.name, ownerTeam: 'wi', riskTier: c.tier });
      const bytes = readFileSync(c.file);
      const digest = await uploadBlob(t, bytes);
      const r = await api('POST', `/models/${c.name}/versions`, {
        files: [{ path: 'model.pkl', size: bytes.length, digest }],
        card: { markdown: '', fields: c.card },
      });
      expect(r.statusCode).toBe(201);
      await scanned(t, c.name, 1);
      const p = await api('POST', `/models/${c.name}/aliases/production/promotions`, {
        version: '1',
      });
      expect(p.statusCode, p.body).toBe(202);
      const approved = await api(
        'POST',
        `/models/${c.name}/aliases/production/promotion-requests/${p.json().request.id}/reviews`,
        { decision: 'approve', comment: 'ok' },
        ada,
      );
      expect(approved.json().status).toBe('promoted');
    }
    // A second version of the clean model, never promoted: only --all-versions sees it.
    const bytes = readFileSync(join(CORPUS, 'malicious', 'direct-os.system.pkl'));
    await api('POST', '/models/wi-clean/versions', {
      files: [{ path: 'model.pkl', size: bytes.length, digest: await uploadBlob(t, bytes) }],
      card: { markdown: '', fields: CARD },
    });
    await scanned(t, 'wi-clean', 2);

    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const mg = cliOf(url, t.token);
    const shipped = join(import.meta.dirname, '..', 'policies', 'production-gate.yaml');
    const before = (await api('GET', '/models/wi-evil/aliases/production')).json();
    const out = await mg('policy', 'what-if', shipped, '--json');
    expect(out.code, out.out).toBe(1);
    const report = JSON.parse(out.out) as {
      evaluated: number;
      passing: number;
      failing: {
        model: string;
        version: number;
        outcome: string;
        failed: { rule: string; message: string }[];
      }[];
    };
    const mine = report.failing.filter((f) => f.model.startsWith('wi-'));
    expect(
      mine.map((f) => `${f.model}@${f.version}:${f.failed.map((x) => x.rule).join(',')}`).sort(),
    ).toEqual([
      'wi-evil@1:no-unwaived-critical-high',
      'wi-high@1:independent-approvals',
      'wi-nocard@1:model-card-complete',
    ]);
    expect(mine.find((f) => f.model === 'wi-nocard')?.failed[0]?.message).toBe(
      'model card lacks required field(s) (each a non-empty text): limitations, trainingData',
    );
    expect(mine.find((f) => f.model === 'wi-high')?.outcome).toBe('pending');
    // Human output names each and says why; nothing changed.
    const text = await mg('policy', 'what-if', shipped);
    expect(text.out).toMatch(
      /would FAIL: wi-evil@1 for production \(current holder\)\n\s+FAIL no-unwaived-critical-high: 1 unwaived/,
    );
    expect((await api('GET', '/models/wi-evil/aliases/production')).json()).toEqual(before);
    const all = JSON.parse(
      (await mg('policy', 'what-if', shipped, '--all-versions', '--json')).out,
    ) as typeof report;
    expect(all.failing.filter((f) => f.model === 'wi-clean').map((f) => f.version)).toEqual([2]);
    await t.composed.deps.runner.stop();
    await t.composed.app.close();
  });
});

describeEachEngine('what-if over many versions', (db) => {
  it('evaluates every version once, in slices and pages, and lists failures in model and version order', async () => {
    const tdb = db();
    const t = await testApp(tdb);
    const api = apiOf(t);
    // One model with more versions than a slice holds (read in pages along its index) and
    // forty small ones that share slices.
    const big = await seedPortfolio(tdb.database, 1, 1203, 'wib');
    const small = await seedPortfolio(tdb.database, 40, 3, 'wis');
    const odd = `apiVersion: modelgate.dev/v1
kind: GatePolicy
metadata: {name: wi-even}
spec:
  bindings: {aliases: [production]}
  validations:
    - name: even
      expression: version.number % 2 == 0
      messageExpression: "'odd: ' + version.model + '@' + string(version.number)"
      reason: Test
      action: deny
`;
    const r = await api('POST', '/gate-policies/what-if', { document: odd, allVersions: true });
    expect(r.statusCode, r.body).toBe(200);
    const report = r.json() as {
      evaluated: number;
      passing: number;
      failing: { model: string; version: number; failed: { message: string }[] }[];
    };
    const names = [...big.names, ...small.names].sort();
    const expected = names.flatMap((name) => {
      const n = name.startsWith('wib') ? 1203 : 3;
      return Array.from({ length: n }, (_, i) => i + 1)
        .filter((v) => v % 2 === 1)
        .map((v) => `${name}@${v}`);
    });
    const mine = report.failing.filter((f) => f.model.startsWith('wi'));
    expect(mine.map((f) => `${f.model}@${f.version}`)).toEqual(expected);
    expect(mine.every((f) => f.failed[0]?.message === `odd: ${f.model}@${f.version}`)).toBe(true);
    expect(report.evaluated).toBeGreaterThanOrEqual(1203 + 120);
    expect(report.evaluated).toBe(report.passing + report.failing.length);

    // A rule that errors on some versions (the seeded cards have no `note`): those versions
    // are decided by cel-js, the others by the compiled rules, and both kinds are reported.
    const noted = `${odd.replace('wi-even', 'wi-noted')}    - name: noted
      expression: "version.number > 3 || version.card.note == 'ok'"
      message: no note
      reason: Test
      action: deny
`;
    const r2 = await api('POST', '/gate-policies/what-if', { document: noted, allVersions: true });
    expect(r2.statusCode, r2.body).toBe(200);
    const mine2 = (r2.json() as typeof report).failing.filter((f) => f.model.startsWith('wi'));
    const expected2 = names.flatMap((name) => {
      const n = name.startsWith('wib') ? 1203 : 3;
      return Array.from({ length: n }, (_, i) => i + 1)
        .filter((v) => v % 2 === 1 || v <= 3)
        .map((v) => {
          const rules = [
            ...(v % 2 === 1 ? [`odd: ${name}@${v}`] : []),
            ...(v <= 3 ? ['no note'] : []),
          ];
          return `${name}@${v} ${rules.join('; ')}`;
        });
    });
    expect(
      mine2.map((f) => `${f.model}@${f.version} ${f.failed.map((x) => x.message).join('; ')}`),
    ).toEqual(expected2);
    await t.composed.deps.runner.stop();
    await t.composed.app.close();
  });
});
