import { join } from 'node:path';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { apiOf, type TestApp, testApp, tokenFor } from './helpers/app.js';
import { cliOf } from './helpers/cli.js';
import { describeEachEngine } from './helpers/engines.js';
import { CORPUS, pushFile, waitForScans } from './helpers/versions.js';

// Regression tests for the gate bypasses of the governance-integrity review (issue 16,
// findings 2, 3, 4, 11 and 12), each tried the way a hostile insider would, through the API.

const MALICIOUS = join(CORPUS, 'malicious', 'direct-os.system.pkl');
const BENIGN = join(CORPUS, 'benign', 'numpy-array-protocol2.pkl');
// A file of its own for the test whose rejection stands: rejections follow the bytes.
const REJECTED = join(CORPUS, 'malicious', 'direct-builtins.eval.pkl');
const HOUR = 3_600_000;
const later = () => new Date(Date.now() + HOUR).toISOString();

type Api = ReturnType<typeof apiOf>;

async function people(t: TestApp) {
  const user = (name: string, roles: string[], teams: string[]) =>
    tokenFor(t, { name, kind: 'user', roles, teams });
  return {
    // ann builds fraud models; cat is an approver outside the risk team; rik and ada approve for risk.
    ann: await user('ann', ['contributor'], ['fraud']),
    cat: await user('cat', ['approver'], ['fraud']),
    rik: await user('rik', ['approver'], ['risk']),
    ada: await user('ada', ['approver'], ['risk']),
    bob: await user('bob', ['approver'], ['risk']),
  };
}

const expectCode = (
  r: { statusCode: number; body: string; json(): { code?: string } },
  status: number,
  code: string,
) => {
  expect(r.statusCode, r.body).toBe(status);
  expect(r.json().code, r.body).toBe(code);
};

async function criticalRules(api: Api, model: string, n: number): Promise<string[]> {
  const fs = (await api('GET', `/models/${model}/versions/${n}/findings`)).json().items as {
    ruleId: string;
    severity: string;
  }[];
  return [
    ...new Set(fs.filter((f) => ['critical', 'high'].includes(f.severity)).map((f) => f.ruleId)),
  ];
}

describeEachEngine('governance integrity', (db) => {
  let t: TestApp;
  let api: Api;
  let p: Awaited<ReturnType<typeof people>>;

  it('sets up a server with the shipped gate policies', async () => {
    t = await testApp(db(), { gatePack: true, worker: true });
    api = apiOf(t);
    p = await people(t);
  });

  it('contributors create models only for their own teams', async () => {
    expectCode(
      await api('POST', '/models', { name: 'elsewhere', ownerTeam: 'payments' }, p.ann),
      403,
      'FORBIDDEN',
    );
    // Without an owner team the model would belong to the default team, not hers.
    expectCode(
      await api('POST', '/models', { name: 'teamless', riskTier: 'high' }, p.ann),
      403,
      'FORBIDDEN',
    );
    // The tier decides which rules bind: below high, an approver classifies a new model.
    for (const riskTier of [undefined, 'minimal', 'limited']) {
      const low = await api(
        'POST',
        '/models',
        { name: 'mine', ownerTeam: 'fraud', riskTier },
        p.ann,
      );
      expectCode(low, 403, 'FORBIDDEN');
      expect(low.json().message).toMatch(/new-model-classified/);
    }
    const ok = await api(
      'POST',
      '/models',
      { name: 'mine', ownerTeam: 'fraud', riskTier: 'high' },
      p.ann,
    );
    expect(ok.statusCode, ok.body).toBe(201);
    const dan = await tokenFor(t, {
      name: 'dan',
      kind: 'user',
      roles: ['contributor', 'approver'],
      teams: ['fraud'],
    });
    const byApprover = await api(
      'POST',
      '/models',
      { name: 'dans', ownerTeam: 'fraud', riskTier: 'limited' },
      dan,
    );
    expect(byApprover.statusCode, byApprover.body).toBe(201);
  });

  it('a contributor cannot lower the risk tier, move the model or drop a bound tag; plain edits still work', async () => {
    expect(
      (
        await api('POST', '/models', {
          name: 'scorer',
          ownerTeam: 'fraud',
          riskTier: 'high',
          tags: ['pii'],
        })
      ).statusCode,
    ).toBe(201);
    // A policy bound on the `pii` tag: dropping the tag would escape it.
    const bound = await api('POST', '/gate-policies', {
      document: [
        'apiVersion: modelgate.dev/v1',
        'kind: GatePolicy',
        'metadata: {name: pii-gate}',
        'spec:',
        '  bindings: {aliases: [production], modelTags: [pii]}',
        '  validations:',
        '    - {name: card-has-data, expression: "\'trainingData\' in version.card", message: card lacks trainingData, reason: Documentation, action: deny}',
      ].join('\n'),
    });
    expect(bound.statusCode, bound.body).toBe(201);
    for (const patch of [{ riskTier: 'minimal' }, { ownerTeam: 'risk' }, { tags: [] }])
      expectCode(await api('PATCH', '/models/scorer', patch, p.ann), 403, 'FORBIDDEN');
    const model = (await api('GET', '/models/scorer')).json();
    expect(model).toMatchObject({ riskTier: 'high', ownerTeam: 'fraud', tags: ['pii'] });
    // A tag no policy binds on or reads is a plain edit, as is the description.
    const plain = await api(
      'PATCH',
      '/models/scorer',
      { description: 'card fraud', tags: ['pii', 'cards'] },
      p.ann,
    );
    expect(plain.statusCode, plain.body).toBe(200);
    // An approver outside the risk team may not lower a high tier; one inside may.
    expectCode(
      await api('PATCH', '/models/scorer', { riskTier: 'limited' }, p.cat),
      403,
      'FORBIDDEN',
    );
    const lowered = await api('PATCH', '/models/scorer', { riskTier: 'limited' }, p.rik);
    expect(lowered.statusCode, lowered.body).toBe(200);
    const raised = await api('PATCH', '/models/scorer', { riskTier: 'high' }, p.cat);
    expect(raised.statusCode, raised.body).toBe(200);
    const logged = await sql<{ actor: string }>`
      SELECT actor FROM (SELECT actor, action, subject FROM audit_pending
        UNION ALL SELECT actor, action, subject FROM audit_events) e
      WHERE e.action = 'model.classify' AND e.subject = 'model:scorer'
      ORDER BY actor`.execute(t.composed.database.db);
    expect(logged.rows.map((r) => r.actor)).toEqual(['cat', 'rik']);
  });

  it('nobody with a stake in a pending or holding version reclassifies the model, and a change re-evaluates open requests', async () => {
    await api('POST', '/models', { name: 'ranker', ownerTeam: 'fraud', riskTier: 'high' });
    const v = await pushFile(t, 'ranker', BENIGN, { token: p.ann });
    await waitForScans(t, 'ranker', v.number);
    const req = await api(
      'POST',
      '/models/ranker/aliases/production/promotions',
      { version: String(v.number) },
      p.ada,
    );
    expect(req.statusCode, req.body).toBe(202);
    const id = req.json().request.id as number;
    // ada requested it: she cannot lower the tier that decides how many approvals it needs.
    expectCode(
      await api('PATCH', '/models/ranker', { riskTier: 'limited' }, p.ada),
      403,
      'SEPARATION_OF_DUTIES',
    );
    // One independent approval: not enough for a high-risk model.
    const one = await api(
      'POST',
      `/models/ranker/aliases/production/promotion-requests/${id}/reviews`,
      { decision: 'approve', comment: 'ok' },
      p.rik,
    );
    expect(one.json().status, one.body).toBe('pending');
    // bob (risk, no stake) lowers the tier: the open request is evaluated again and passes.
    const lowered = await api('PATCH', '/models/ranker', { riskTier: 'limited' }, p.bob);
    expect(lowered.statusCode, lowered.body).toBe(200);
    const after = (await api('GET', `/promotion-requests/${id}`)).json();
    expect(after.state).toBe('promoted');
    const d = (await api('GET', `/decisions/${after.decisionId}`)).json();
    expect(d).toMatchObject({ outcome: 'allow', decidedBy: 'bob', moved: true });
    // Raising it again re-checks the holder: one approval no longer suffices, it is flagged.
    const raised = await api('PATCH', '/models/ranker', { riskTier: 'high' }, p.bob);
    expect(raised.statusCode, raised.body).toBe(200);
    const digest = (await api('GET', `/models/ranker/versions/${v.number}`)).json().digest;
    const verify = (
      await api('GET', `/verify?model=ranker&alias=production&digest=${digest}`)
    ).json();
    expect(verify.approved, JSON.stringify(verify)).toBe(false);
    expect(verify.flaggedBy).not.toBeNull();
  });

  it('nobody with any part in a version classifies the model, requested or not', async () => {
    await api('POST', '/models', { name: 'pre', ownerTeam: 'fraud', riskTier: 'high' });
    // An author who is also an approver, before asking for anything.
    const alice = await tokenFor(t, {
      name: 'alice',
      kind: 'user',
      roles: ['contributor', 'approver'],
      teams: ['fraud', 'risk'],
    });
    const v = await pushFile(t, 'pre', BENIGN, { token: alice });
    await waitForScans(t, 'pre', v.number);
    expectCode(
      await api('PATCH', '/models/pre', { riskTier: 'limited' }, alice),
      403,
      'SEPARATION_OF_DUTIES',
    );
    // An evaluator of a waiting version, through an account they own.
    const eve = await tokenFor(t, {
      name: 'eve',
      kind: 'user',
      roles: ['approver'],
      teams: ['risk'],
    });
    await api('POST', '/identities', {
      name: 'eve-bot',
      kind: 'service-account',
      roles: ['evaluator'],
      owner: 'eve',
      purpose: 'scans',
    });
    const bot = (await api('POST', '/identities/eve-bot/tokens', { name: 'b' })).json().secret;
    const scan = await api(
      'POST',
      `/models/pre/versions/${v.number}/evaluations`,
      { evaluator: 'artifact-scan' },
      bot,
    );
    expect(scan.statusCode, scan.body).toBeLessThan(300);
    await waitForScans(t, 'pre', v.number);
    expectCode(
      await api('PATCH', '/models/pre', { riskTier: 'limited' }, eve),
      403,
      'SEPARATION_OF_DUTIES',
    );
    expect((await api('GET', '/models/pre')).json().riskTier).toBe('high');
  });

  it('an approval stops counting when its reviewer takes a part in the version; an earlier requester does not approve', async () => {
    await api('POST', '/models', { name: 'late', ownerTeam: 'fraud', riskTier: 'high' });
    const v = await pushFile(t, 'late', BENIGN, { token: p.ann });
    await waitForScans(t, 'late', v.number);
    const url = '/models/late/aliases/production/promotions';
    // bob asks first (rik rejects, then withdraws); ann asks again: bob may not approve that.
    const first = await api('POST', url, { version: String(v.number) }, p.bob);
    expect(first.statusCode, first.body).toBe(202);
    const reviews = (id: number) =>
      `/models/late/aliases/production/promotion-requests/${id}/reviews`;
    await api(
      'POST',
      reviews(first.json().request.id),
      { decision: 'reject', comment: 'mine' },
      p.rik,
    );
    await api(
      'POST',
      `/models/late/aliases/production/promotion-requests/${first.json().request.id}/rejection-withdrawals`,
      { comment: 'ok' },
      p.rik,
    );
    const second = await api('POST', url, { version: String(v.number) }, p.ann);
    expect(second.statusCode, second.body).toBe(202);
    const id = second.json().request.id as number;
    expectCode(
      await api('POST', reviews(id), { decision: 'approve', comment: 'x' }, p.bob),
      403,
      'SEPARATION_OF_DUTIES',
    );
    // rik approves, then his own pipeline scans the version: rik's approval no longer counts.
    expect(
      (await api('POST', reviews(id), { decision: 'approve', comment: 'ok' }, p.rik)).json().status,
    ).toBe('pending');
    await api('POST', '/identities', {
      name: 'rik-bot',
      kind: 'service-account',
      roles: ['evaluator'],
      owner: 'rik',
      purpose: 'scans',
    });
    const bot = (await api('POST', '/identities/rik-bot/tokens', { name: 'b' })).json().secret;
    await api(
      'POST',
      `/models/late/versions/${v.number}/evaluations`,
      { evaluator: 'artifact-scan' },
      bot,
    );
    await waitForScans(t, 'late', v.number);
    const ada = await api('POST', reviews(id), { decision: 'approve', comment: 'ok' }, p.ada);
    expect(ada.json().status, ada.body).toBe('pending');
    expect(ada.json().decision.reasons.join('\n')).toMatch(/2 approvals/);
  });

  it('a policy that reads tags through a variable makes tag edits classifications', async () => {
    const doc = [
      'apiVersion: modelgate.dev/v1',
      'kind: GatePolicy',
      'metadata: {name: pii-reader}',
      'spec:',
      '  bindings: {aliases: [production]}',
      '  variables:',
      '    - {name: m, expression: model}',
      '  validations:',
      `    - {name: dpia, expression: "!('pii' in variables.m.tags) || 'dpia' in version.card", message: needs a DPIA, reason: Documentation, action: deny}`,
    ].join('\n');
    const r = await api('POST', '/gate-policies', { document: doc });
    expect(r.statusCode, r.body).toBe(201);
    await api('POST', '/models', {
      name: 'tagged',
      ownerTeam: 'fraud',
      riskTier: 'high',
      tags: ['pii'],
    });
    expectCode(await api('PATCH', '/models/tagged', { tags: [] }, p.ann), 403, 'FORBIDDEN');
    expect((await api('GET', '/models/tagged')).json().tags).toEqual(['pii']);
  });

  it('the author cannot waive her findings model-wide either', async () => {
    await api('POST', '/models', { name: 'loader', ownerTeam: 'fraud', riskTier: 'limited' });
    const ann = await tokenFor(t, {
      name: 'ann-approver',
      kind: 'user',
      roles: ['contributor', 'approver'],
      teams: ['fraud', 'risk'],
    });
    const v = await pushFile(t, 'loader', MALICIOUS, { token: ann });
    await waitForScans(t, 'loader', v.number);
    const [rule] = await criticalRules(api, 'loader', v.number);
    expect(rule).toBeDefined();
    const body = { findingRule: rule, justification: 'mine', expiresAt: later() };
    expectCode(
      await api('POST', `/models/loader/versions/${v.number}/waivers`, body, ann),
      403,
      'FORBIDDEN',
    );
    expectCode(await api('POST', '/models/loader/waivers', body, ann), 403, 'SEPARATION_OF_DUTIES');
    expect((await api('GET', '/waivers?model=loader')).json().items).toEqual([]);
    // Someone independent may.
    const ok = await api('POST', '/models/loader/waivers', body, p.rik);
    expect(ok.statusCode, ok.body).toBe(201);
  });

  it("a waiver never covers its approver's own later work", async () => {
    await api('POST', '/models', { name: 'later', ownerTeam: 'fraud', riskTier: 'limited' });
    const v1 = await pushFile(t, 'later', MALICIOUS, { token: p.ann });
    await waitForScans(t, 'later', v1.number);
    // cat has no part in v1: her model-wide waiver is accepted and covers it.
    const cat = await tokenFor(t, {
      name: 'cat-builder',
      kind: 'user',
      roles: ['contributor', 'approver'],
      teams: ['fraud'],
    });
    for (const rule of await criticalRules(api, 'later', v1.number)) {
      const w = await api(
        'POST',
        '/models/later/waivers',
        { findingRule: rule, justification: 'sandboxed', expiresAt: later() },
        cat,
      );
      expect(w.statusCode, w.body).toBe(201);
    }
    const facts = async (n: number) =>
      (
        await api('GET', `/models/later/versions/${n}/gate?policy=production-gate&alias=production`)
      ).json();
    const blocking = (f: { facts?: { findings: { waived: boolean; severity: string }[] } }) =>
      (f.facts?.findings ?? []).filter(
        (x) => !x.waived && ['critical', 'high'].includes(x.severity),
      );
    expect(blocking(await facts(v1.number))).toEqual([]);
    // Then she pushes the same kind of file herself: her own waiver does not clear it.
    const v2 = await pushFile(t, 'later', MALICIOUS, { token: cat });
    await waitForScans(t, 'later', v2.number);
    expect(blocking(await facts(v2.number)).length).toBeGreaterThan(0);
  });

  it('a rejection follows the bytes: the same file pushed again is still rejected', async () => {
    await api('POST', '/models', { name: 'again', ownerTeam: 'fraud', riskTier: 'limited' });
    const v1 = await pushFile(t, 'again', REJECTED, { token: p.ann });
    await waitForScans(t, 'again', v1.number);
    for (const rule of await criticalRules(api, 'again', v1.number))
      await api(
        'POST',
        '/models/again/waivers',
        { findingRule: rule, justification: 'sandboxed', expiresAt: later() },
        p.rik,
      );
    const r1 = await api(
      'POST',
      '/models/again/aliases/production/promotions',
      { version: String(v1.number) },
      p.ann,
    );
    expect(r1.statusCode, r1.body).toBe(202);
    await api(
      'POST',
      `/models/again/aliases/production/promotion-requests/${r1.json().request.id}/reviews`,
      { decision: 'reject', comment: 'not this file' },
      p.rik,
    );
    const v2 = await pushFile(t, 'again', REJECTED, { token: p.ann });
    await waitForScans(t, 'again', v2.number);
    expect(v2.digest).toBe(v1.digest);
    const r2 = await api(
      'POST',
      '/models/again/aliases/production/promotions',
      { version: String(v2.number) },
      p.ann,
    );
    expect(r2.statusCode, r2.body).toBe(202);
    const approved = await api(
      'POST',
      `/models/again/aliases/production/promotion-requests/${r2.json().request.id}/reviews`,
      { decision: 'approve', comment: 'looks new' },
      p.ada,
    );
    expect(approved.json().status, approved.body).not.toBe('promoted');
    expect(approved.json().decision.reasons.join('\n')).toMatch(/rejected by rik/);
    // Nor does a new model at the lowest tier escape it: the bytes are what was rejected.
    await api('POST', '/models', { name: 'again-lite', ownerTeam: 'fraud', riskTier: 'minimal' });
    const v3 = await pushFile(t, 'again-lite', REJECTED, { token: p.ann });
    await waitForScans(t, 'again-lite', v3.number);
    for (const rule of await criticalRules(api, 'again-lite', v3.number))
      await api(
        'POST',
        '/models/again-lite/waivers',
        { findingRule: rule, justification: 'sandboxed', expiresAt: later() },
        p.rik,
      );
    const r3 = await api(
      'POST',
      '/models/again-lite/aliases/production/promotions',
      { version: String(v3.number) },
      p.ann,
    );
    const d3 = await api(
      'POST',
      `/models/again-lite/aliases/production/promotion-requests/${r3.json().request.id}/reviews`,
      { decision: 'approve', comment: 'new model' },
      p.cat,
    );
    expect(d3.json().status, d3.body).not.toBe('promoted');
    expect(d3.json().decision.reasons.join('\n')).toMatch(/rejected by rik/);
  });

  it('separation of duties follows service accounts to their owners', async () => {
    const sa = await api('POST', '/identities', {
      name: 'ci-fraud',
      kind: 'service-account',
      roles: ['contributor', 'approver'],
      teams: ['fraud', 'risk'],
      owner: 'ada',
      purpose: 'training pipeline',
    });
    expect(sa.statusCode, sa.body).toBe(201);
    const twin = await api('POST', '/identities', {
      name: 'ada-helper',
      kind: 'service-account',
      roles: ['approver'],
      teams: ['risk'],
      owner: 'ada',
      purpose: 'review bot',
    });
    expect(twin.statusCode, twin.body).toBe(201);
    const ci = (await api('POST', '/identities/ci-fraud/tokens', { name: 'ci' })).json()
      .secret as string;
    const helper = (await api('POST', '/identities/ada-helper/tokens', { name: 'bot' })).json()
      .secret as string;
    await api('POST', '/models', { name: 'pipeline', ownerTeam: 'fraud', riskTier: 'limited' });
    const v = await pushFile(t, 'pipeline', MALICIOUS, { token: ci });
    await waitForScans(t, 'pipeline', v.number);
    const [rule] = await criticalRules(api, 'pipeline', v.number);
    const body = { findingRule: rule, justification: 'owner', expiresAt: later() };
    // ada owns the account that pushed: she waives nothing of it, nor does her other account.
    for (const who of [p.ada, helper]) {
      expectCode(
        await api('POST', `/models/pipeline/versions/${v.number}/waivers`, body, who),
        403,
        'SEPARATION_OF_DUTIES',
      );
      expectCode(
        await api('POST', '/models/pipeline/waivers', body, who),
        403,
        'SEPARATION_OF_DUTIES',
      );
    }
    expect((await api('POST', '/models/pipeline/waivers', body, p.rik)).statusCode).toBe(201);
    const req = await api(
      'POST',
      '/models/pipeline/aliases/production/promotions',
      { version: String(v.number) },
      ci,
    );
    expect(req.statusCode, req.body).toBe(202);
    const id = req.json().request.id as number;
    for (const who of [p.ada, helper]) {
      const r = await api(
        'POST',
        `/models/pipeline/aliases/production/promotion-requests/${id}/reviews`,
        { decision: 'approve', comment: 'looks fine' },
        who,
      );
      expectCode(r, 403, 'SEPARATION_OF_DUTIES');
      expect(r.json().message).toMatch(/ci-fraud/);
    }
    const independent = await api(
      'POST',
      `/models/pipeline/aliases/production/promotion-requests/${id}/reviews`,
      { decision: 'approve', comment: 'independent' },
      p.bob,
    );
    expect(independent.json().status, independent.body).toBe('promoted');
  });

  it('a rejection stands for the version and alias until its approver withdraws it', async () => {
    await api('POST', '/models', { name: 'tagger', ownerTeam: 'fraud', riskTier: 'limited' });
    const v = await pushFile(t, 'tagger', MALICIOUS, { token: p.ann });
    await waitForScans(t, 'tagger', v.number);
    for (const rule of await criticalRules(api, 'tagger', v.number))
      await api(
        'POST',
        '/models/tagger/waivers',
        { findingRule: rule, justification: 'accepted', expiresAt: later() },
        p.rik,
      );
    const ask = async () =>
      api(
        'POST',
        '/models/tagger/aliases/production/promotions',
        { version: String(v.number) },
        p.ann,
      );
    const first = await ask();
    expect(first.statusCode, first.body).toBe(202);
    const firstId = first.json().request.id as number;
    const rejected = await api(
      'POST',
      `/models/tagger/aliases/production/promotion-requests/${firstId}/reviews`,
      { decision: 'reject', comment: 'not yet' },
      p.rik,
    );
    expect(rejected.json().status, rejected.body).toBe('rejected');
    // Asking again and getting someone else's approval does not forget the rejection.
    const second = await ask();
    expect(second.statusCode, second.body).toBe(202);
    const secondId = second.json().request.id as number;
    const approved = await api(
      'POST',
      `/models/tagger/aliases/production/promotion-requests/${secondId}/reviews`,
      { decision: 'approve', comment: 'fine by me' },
      p.ada,
    );
    expect(approved.json().status, approved.body).not.toBe('promoted');
    expect(approved.json().decision.reasons.join('\n')).toMatch(/no-rejections: rejected by rik/);
    // Only rik withdraws it (ada cannot, not even with override: she is no admin).
    const withdraw = (who: string, body: object) =>
      api(
        'POST',
        `/models/tagger/aliases/production/promotion-requests/${firstId}/rejection-withdrawals`,
        body,
        who,
      );
    expectCode(await withdraw(p.ada, { comment: 'override', override: true }), 403, 'FORBIDDEN');
    const w = await withdraw(p.rik, { comment: 'fixed since' });
    expect(w.statusCode, w.body).toBe(200);
    expect(w.json().reviews[0].withdrawn).toMatchObject({ by: 'rik', override: false });
    expectCode(await withdraw(p.rik, { comment: 'again' }), 404, 'REJECTION_NOT_FOUND');
    // The second request waited for approvals only; asked again, it is evaluated again and
    // ada's approval now carries it.
    const third = await ask();
    expect(third.statusCode, third.body).toBe(201);
    expect(third.json().request.id).toBe(secondId);
    // An admin may override another approver's rejection, and the log says so.
    const v2 = await pushFile(t, 'tagger', MALICIOUS, { token: p.ann });
    await waitForScans(t, 'tagger', v2.number);
    const r2 = await api(
      'POST',
      '/models/tagger/aliases/production/promotions',
      { version: String(v2.number) },
      p.ann,
    );
    const id2 = r2.json().request.id as number;
    await api(
      'POST',
      `/models/tagger/aliases/production/promotion-requests/${id2}/reviews`,
      { decision: 'reject', comment: 'no' },
      p.bob,
    );
    const path = `/models/tagger/aliases/production/promotion-requests/${id2}/rejection-withdrawals`;
    expectCode(await api('POST', path, { comment: 'mine now' }), 403, 'FORBIDDEN');
    const o = await api('POST', path, { comment: 'bob left; reviewed again', override: true });
    expect(o.statusCode, o.body).toBe(200);
    expect(o.json().reviews[0].withdrawn).toMatchObject({ by: 'admin', override: true });
  });

  it('the CLI classifies models and withdraws rejections', async () => {
    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const asAnn = cliOf(url, p.ann);
    const asAda = cliOf(url, p.ada);
    await api('POST', '/models', { name: 'cli-model', ownerTeam: 'fraud', riskTier: 'high' });
    const refused = await asAnn('model', 'update', 'cli-model', '--risk-tier', 'minimal');
    expect(refused.code, refused.out).not.toBe(0);
    expect(refused.out).toMatch(/FORBIDDEN|deny/);
    const none = await asAda('model', 'update', 'cli-model');
    expect(none.code, none.out).toBe(2);
    const ok = await asAda('model', 'update', 'cli-model', '--risk-tier', 'limited');
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toMatch(/risk tier limited/);
    const v = await pushFile(t, 'cli-model', MALICIOUS, { token: p.ann });
    await waitForScans(t, 'cli-model', v.number);
    for (const rule of await criticalRules(api, 'cli-model', v.number))
      await api(
        'POST',
        '/models/cli-model/waivers',
        { findingRule: rule, justification: 'sandboxed', expiresAt: later() },
        p.rik,
      );
    const r = await api(
      'POST',
      '/models/cli-model/aliases/production/promotions',
      { version: String(v.number) },
      p.ann,
    );
    expect(r.statusCode, r.body).toBe(202);
    const id = String(r.json().request.id);
    const rejected = await asAda('request', 'reject', id, '--comment', 'no');
    expect(rejected.code, rejected.out).toBe(1);
    const shown = await asAda('request', 'withdraw-rejection', id, '--comment', 'changed my mind');
    expect(shown.code, shown.out).toBe(0);
    expect(shown.out).toMatch(/withdrawn by ada/);
    const again = await asAda('request', 'withdraw-rejection', id, '--comment', 'twice');
    expect(again.code).not.toBe(0);
    expect(again.out).toMatch(/REJECTION_NOT_FOUND|no standing rejection/);
  });

  it('waivers name a real, waivable rule and never a wildcard', async () => {
    await api('POST', '/models', { name: 'waived', ownerTeam: 'fraud', riskTier: 'limited' });
    const v = await pushFile(t, 'waived', MALICIOUS, { token: p.ann });
    await waitForScans(t, 'waived', v.number);
    const waive = (body: object) =>
      api(
        'POST',
        `/models/waived/versions/${v.number}/waivers`,
        { justification: 'test', expiresAt: later(), ...body },
        p.rik,
      );
    for (const body of [
      { findingRule: '*' },
      { findingRule: 'pickle.*' },
      { findingRule: 'garak/never.Seen' },
      { rule: 'production-gate/*' },
      { rule: 'production-gate/no-such-rule' },
      { rule: 'no-such-policy/tier-promotable' },
      { rule: 'production-gate/tier-promotable' },
      { rule: 'production-gate/independent-approvals' },
      { rule: 'production-gate/no-rejections' },
    ])
      expectCode(await waive(body), 400, 'INVALID_WAIVER');
    const [rule] = await criticalRules(api, 'waived', v.number);
    expect((await waive({ findingRule: rule })).statusCode).toBe(201);
    expect((await waive({ findingRule: 'onnx.python-operator' })).statusCode).toBe(201);
    expect((await waive({ rule: 'production-gate/model-card-complete' })).statusCode).toBe(201);
    await t.composed.deps.runner.stop();
    await t.composed.app.close();
  });

  it('a classification decided when the policy set is due for a reload completes', async () => {
    // refreshMs 0: every look at the policies would reload them. A classification is decided
    // inside the transaction that writes it; on SQLite that transaction holds the only
    // connection, so a reload there waited for itself and the server stalled (CI, slow runs).
    const stale = await testApp(db(), { gatePack: true, refreshMs: 0 });
    const rik = await tokenFor(stale, {
      name: 'rik2',
      kind: 'user',
      roles: ['approver'],
      teams: ['risk'],
    });
    const call = apiOf(stale);
    expect(
      (await call('POST', '/models', { name: 'due', ownerTeam: 'fraud', riskTier: 'high' }))
        .statusCode,
    ).toBe(201);
    for (const riskTier of ['limited', 'high', 'minimal']) {
      const r = await call('PATCH', '/models/due', { riskTier }, rik);
      expect(r.statusCode, r.body).toBe(200);
      expect(r.json().riskTier).toBe(riskTier);
    }
    // A refusal decided there is refused cleanly, too.
    expectCode(await call('PATCH', '/models/due', { riskTier: 'high' }, p.ann), 403, 'FORBIDDEN');
    expect((await call('GET', '/models/due')).json().riskTier).toBe('minimal');
    await stale.composed.app.close();
  });
});
