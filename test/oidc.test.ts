import { execFile } from 'node:child_process';
import type { webcrypto } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { testApp } from './helpers/app.js';
import { describeEachEngine } from './helpers/engines.js';
import { CLI } from './helpers/server-process.js';

// A local OIDC issuer: its own key pair, its JWKS served on loopback, tokens signed here.
let issuerServer: Server;
let issuer: string;
let signingKey: webcrypto.CryptoKey;
let otherKey: webcrypto.CryptoKey;

beforeAll(async () => {
  const pair = await generateKeyPair('RS256');
  signingKey = pair.privateKey;
  otherKey = (await generateKeyPair('RS256')).privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  issuerServer = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/jwks') return res.end(JSON.stringify({ keys: [jwk] }));
    // GitHub Actions' token endpoint: a bearer-protected GET naming the audience.
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/gha' && req.headers.authorization === 'Bearer gha-request-token')
      return void sign({}, { audience: u.searchParams.get('audience') ?? '' }).then((value) =>
        res.end(JSON.stringify({ value })),
      );
    res.statusCode = 404;
    res.end('{}');
  });
  await new Promise<void>((r) => issuerServer.listen(0, '127.0.0.1', r));
  const addr = issuerServer.address();
  issuer = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});
afterAll(() => new Promise<void>((r) => issuerServer.close(() => r())));

const claims = {
  repository: 'acme/fraud',
  ref: 'refs/heads/main',
  sub: 'repo:acme/fraud:ref:refs/heads/main',
};
function sign(
  over: Record<string, unknown> = {},
  opts: {
    audience?: string | string[];
    expires?: string;
    key?: webcrypto.CryptoKey;
    kid?: string;
    /** Issued at, seconds since the epoch (default now). */
    iat?: number;
  } = {},
) {
  return new SignJWT({ ...claims, ...over })
    .setProtectedHeader({ alg: 'RS256', kid: opts.kid ?? 'k1' })
    .setIssuer(issuer)
    .setAudience(opts.audience ?? 'modelgate')
    .setIssuedAt(opts.iat)
    .setExpirationTime(opts.expires ?? '5m')
    .sign(opts.key ?? signingKey);
}

describeEachEngine('OIDC workload federation', (db) => {
  it('exchanges a trusted CI token for a short-lived service-account token, and refuses the rest', async () => {
    const file = join(db().dataDir, 'oidc.yaml');
    writeFileSync(
      file,
      `workloads:\n  - issuer: ${issuer}\n    jwksUrl: ${issuer}/jwks\n    audience: modelgate\n    claims: {repository: acme/fraud, ref: refs/heads/main}\n    serviceAccount: fraud-ci\n    tokenMinutes: 10\n`,
    );
    const t = await testApp(db(), { oidcConfig: file });
    await t.call({
      method: 'POST',
      url: '/api/v1/identities',
      payload: {
        name: 'fraud-ci',
        kind: 'service-account',
        roles: ['contributor'],
        owner: 'admin',
        purpose: 'CI of acme/fraud',
      },
    });
    const exchange = (token: string) =>
      t.composed.app.inject({ method: 'POST', url: '/api/v1/oidc/token', payload: { token } });

    const ok = await exchange(await sign());
    expect(ok.statusCode, ok.body).toBe(201);
    const issued = ok.json() as { secret: string; identity: string; expiresAt: string };
    expect(issued).toMatchObject({ identity: 'fraud-ci', kind: 'service-account' });
    const minutes = (Date.parse(issued.expiresAt) - Date.now()) / 60_000;
    expect(minutes).toBeGreaterThan(9);
    expect(minutes).toBeLessThanOrEqual(10);
    const me = await t.composed.app.inject({
      method: 'GET',
      url: '/api/v1/whoami',
      headers: { authorization: `Bearer ${issued.secret}` },
    });
    expect(me.json()).toMatchObject({ identity: { name: 'fraud-ci', kind: 'service-account' } });

    const refused = async (token: string, status: number, message: RegExp) => {
      const r = await exchange(token);
      expect(r.statusCode, r.body).toBe(status);
      expect(r.json().message).toMatch(message);
    };
    await refused(await sign({}, { audience: 'someone-else' }), 401, /aud/);
    await refused(await sign({ repository: 'acme/other' }), 403, /no trust rule matches/);
    await refused(await sign({ ref: 'refs/heads/feature' }), 403, /no trust rule matches/);
    await refused(await sign({}, { expires: '-10m' }), 401, /exp/);
    await refused(await sign({}, { key: otherKey }), 401, /signature/);
    await refused(await sign({}, { key: otherKey, kid: 'unknown' }), 401, /key/i);
    const unsigned = new UnsecuredJWT({ ...claims })
      .setIssuer(issuer)
      .setAudience('modelgate')
      .setIssuedAt()
      .setExpirationTime('5m')
      .encode();
    await refused(unsigned, 401, /OIDC token refused/);
    await refused('not-a-jwt', 401, /not a JWT/);
    const foreign = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer('https://evil.example')
      .setAudience('modelgate')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(signingKey);
    await refused(foreign, 401, /not trusted/);

    // The CLI does the same from a CI job: the OIDC token from an environment variable.
    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const work = mkdtempSync(join(tmpdir(), 'mg-oidc-cli-'));
    const env = {
      ...process.env,
      MODELGATE_CONFIG: join(work, 'config.json'),
      MODELGATE_SERVER: '',
      MODELGATE_TOKEN: '',
      CI_OIDC_TOKEN: await sign(),
    };
    const cli = (...args: (string | Record<string, string>)[]) =>
      new Promise<{ code: number; out: string }>((resolve) =>
        execFile(
          process.execPath,
          [CLI, ...args.filter((a): a is string => typeof a === 'string')],
          { env: { ...env, ...args.find((a) => typeof a !== 'string') } },
          (err, stdout, stderr) =>
            resolve({
              code: err ? Number((err as { code?: number }).code) : 0,
              out: stdout + stderr,
            }),
        ),
      );
    const login = await cli('login', '--server', url, '--oidc-token-env', 'CI_OIDC_TOKEN');
    expect(login.code, login.out).toBe(0);
    expect(login.out).toMatch(/logged in to .* as fraud-ci until /);
    expect((await cli('whoami')).out).toMatch(/name:\s+fraud-ci/);
    const both = await cli('login', '--server', url, '--token', 'x', '--oidc-token-env', 'Y');
    expect(both.code).toBe(2);
    // `login --oidc` in GitHub Actions: the job's token is requested for the audience.
    const gha = await cli('login', '--server', url, '--oidc', {
      ACTIONS_ID_TOKEN_REQUEST_URL: `${issuer}/gha?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'gha-request-token',
    });
    expect(gha.code, gha.out).toBe(0);
    expect(gha.out).toMatch(/as fraud-ci until/);
    const wrongAud = await cli('login', '--server', url, '--oidc', '--audience', 'other', {
      ACTIONS_ID_TOKEN_REQUEST_URL: `${issuer}/gha?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'gha-request-token',
    });
    expect(wrongAud.code).toBe(1);
    expect(wrongAud.out).toMatch(/OIDC token refused/);
    const nowhere = await cli('login', '--server', url, '--oidc');
    expect(nowhere.code).toBe(2);
    expect(nowhere.out).toMatch(/MODELGATE_OIDC_TOKEN/);
    await t.composed.app.close();
  });

  it('logs people in with SSO: claims name the user, groups name the teams', async () => {
    const file = join(db().dataDir, 'oidc-people.yaml');
    writeFileSync(
      file,
      [
        'people:',
        `  - issuer: ${issuer}`,
        `    jwksUrl: ${issuer}/jwks`,
        '    audience: modelgate-sso',
        '    usernameClaim: email',
        '    emailDomain: acme.example',
        '    teamsClaim: groups',
        '    teamMap: {"grp-payments": payments, "grp-risk": risk}',
        '    provision: true',
        '    defaultRoles: [viewer]',
        '    tokenHours: 2',
        '',
      ].join('\n'),
    );
    const t = await testApp(db(), { oidcConfig: file });
    const exchange = (token: string) =>
      t.composed.app.inject({ method: 'POST', url: '/api/v1/oidc/token', payload: { token } });
    const person = (over: Record<string, unknown>) =>
      sign(
        { sub: 'u-123', email: 'Alice@acme.example', email_verified: true, ...over },
        { audience: 'modelgate-sso' },
      );

    // First login creates the user with the default roles and the mapped teams.
    const first = await exchange(await person({ groups: ['grp-payments', 'unmapped'] }));
    expect(first.statusCode, first.body).toBe(201);
    const issued = first.json() as {
      identity: string;
      kind: string;
      secret: string;
      expiresAt: string;
    };
    expect(issued).toMatchObject({ identity: 'alice', kind: 'user' });
    expect((Date.parse(issued.expiresAt) - Date.now()) / 3_600_000).toBeCloseTo(2, 0);
    const me = await t.composed.app.inject({
      method: 'GET',
      url: '/api/v1/whoami',
      headers: { authorization: `Bearer ${issued.secret}` },
    });
    expect(me.json().identity).toMatchObject({
      name: 'alice',
      roles: ['viewer'],
      teams: ['payments'],
    });
    // Later logins follow the identity provider's groups; roles stay Modelgate's.
    await t.call({ method: 'PUT', url: '/api/v1/identities/alice/roles/approver' });
    const again = await exchange(await person({ groups: ['grp-risk'] }));
    expect(again.statusCode).toBe(201);
    const alice = (await t.call({ method: 'GET', url: '/api/v1/identities/alice' })).json();
    expect(alice).toMatchObject({ roles: ['approver', 'viewer'], teams: ['risk'] });

    const refused = async (token: string, status: number, message: RegExp) => {
      const r = await exchange(token);
      expect(r.statusCode, r.body).toBe(status);
      expect(r.json().message).toMatch(message);
    };
    await refused(await person({ email_verified: false }), 403, /not verified/);
    await refused(await person({ email: 'mallory@evil.example' }), 403, /not an address in acme/);
    await refused(await person({ email: undefined }), 403, /no email claim/);
    await refused(
      await sign({ email: 'alice@acme.example', email_verified: true }, { audience: 'modelgate' }),
      401,
      /aud/,
    );
    // A person cannot log in as a service account of the same name.
    await t.call({
      method: 'POST',
      url: '/api/v1/identities',
      payload: { name: 'build', kind: 'service-account', owner: 'admin', purpose: 'ci' },
    });
    await refused(await person({ email: 'build@acme.example' }), 403, /service account/);
    // A name in a token is only a claim: someone the provider lets call themselves admin (or
    // reuse an address) does not become an existing user that is not bound to their subject.
    await refused(
      await person({ sub: 'someone-else', email: 'admin@acme.example' }),
      403,
      /user admin is not bound to an SSO login/,
    );
    await refused(await person({ sub: 'u-999', groups: [] }), 403, /bound to another SSO login/);
    await refused(
      await person({ email: '\u212Aelly@acme.example' }),
      403,
      /outside printable ASCII/,
    );
    // An admin binds a user to a subject; that subject, and only it, logs in as the user.
    await t.call({
      method: 'POST',
      url: '/api/v1/identities',
      payload: { name: 'carol', kind: 'user', sso: { issuer, subject: 'u-carol' } },
    });
    const carol = await exchange(await person({ sub: 'u-carol', email: 'carol@acme.example' }));
    expect(carol.statusCode, carol.body).toBe(201);
    expect(carol.json()).toMatchObject({ identity: 'carol' });
    await refused(
      await person({ sub: 'u-mallory', email: 'carol@acme.example' }),
      403,
      /bound to another SSO login/,
    );
    await t.composed.app.close();
  });

  // Issue 17, finding 8: the subject is a non-empty string, the times are believable, every
  // claim a rule reads has its type, and a rule's kind comes from the configuration and the
  // token's audience, never from the claims a token happens to carry.
  it('refuses tokens whose subject, times or claim types are not what a rule reads', async () => {
    const both = (peopleAudience: string) =>
      [
        'workloads:',
        `  - issuer: ${issuer}`,
        `    jwksUrl: ${issuer}/jwks`,
        '    audience: modelgate',
        '    claims: {repository: acme/fraud, ref: refs/heads/main}',
        '    serviceAccount: fraud-ci',
        'people:',
        `  - issuer: ${issuer}`,
        `    jwksUrl: ${issuer}/jwks`,
        `    audience: ${peopleAudience}`,
        '    usernameClaim: email',
        '    emailDomain: acme.example',
        '    teamsClaim: groups',
        '    provision: true',
        '',
      ].join('\n');
    // Rules of both kinds on one issuer with one audience: a startup error naming the fix.
    const shared = join(db().dataDir, 'oidc-shared.yaml');
    writeFileSync(shared, both('modelgate'));
    await expect(testApp(db(), { oidcConfig: shared })).rejects.toThrow(
      /workloads\[0\] and people\[0\] trust issuer .* with the same audience "modelgate": give the workload rules of this issuer an audience of their own/,
    );

    const file = join(db().dataDir, 'oidc-both.yaml');
    writeFileSync(file, both('modelgate-sso'));
    const t = await testApp(db(), { oidcConfig: file });
    await t.call({
      method: 'POST',
      url: '/api/v1/identities',
      payload: { name: 'fraud-ci', kind: 'service-account', owner: 'admin', purpose: 'CI' },
    });
    for (const [name, subject] of [
      ['dave', 'A-111'],
      ['erin', '111'],
    ])
      expect(
        (
          await t.call({
            method: 'POST',
            url: '/api/v1/identities',
            payload: { name, kind: 'user', sso: { issuer, subject } },
          })
        ).statusCode,
      ).toBe(201);
    const exchange = (token: string) =>
      t.composed.app.inject({ method: 'POST', url: '/api/v1/oidc/token', payload: { token } });
    const refused = async (token: string, status: number, message: RegExp) => {
      const r = await exchange(token);
      expect(r.statusCode, r.body).toBe(status);
      expect(r.json().message).toMatch(message);
    };
    const person = (over: Record<string, unknown>, opts: Parameters<typeof sign>[1] = {}) =>
      sign(
        { repository: undefined, ref: undefined, email_verified: true, ...over },
        { audience: 'modelgate-sso', ...opts },
      );
    const now = Math.floor(Date.now() / 1000);

    // The bound subjects log in; the same subjects as a list or a number do not.
    const dave = await exchange(await person({ sub: 'A-111', email: 'dave@acme.example' }));
    expect(dave.statusCode, dave.body).toBe(201);
    expect(dave.json()).toMatchObject({ identity: 'dave' });
    await refused(
      await person({ sub: ['A-111'], email: 'dave@acme.example' }),
      401,
      /sub claim is a list; it must be a non-empty string/,
    );
    await refused(
      await person({ sub: 111, email: 'erin@acme.example' }),
      401,
      /sub claim is a number/,
    );
    // No subject, or an empty one, would make every such token one user.
    await refused(await person({ sub: undefined, email: 'new1@acme.example' }), 401, /sub/);
    await refused(await person({ sub: '', email: 'new2@acme.example' }), 401, /sub claim is empty/);
    await refused(await sign({ sub: undefined }), 401, /sub/);
    await refused(await sign({ sub: ['repo:acme/fraud'] }), 401, /sub claim is a list/);

    // Issued a year from now, or more than a day ago (the default maxTokenAgeMinutes).
    await refused(
      await sign({}, { iat: now + 365 * 86_400, expires: '1y' }),
      401,
      /issued in the future/,
    );
    await refused(
      await person({ sub: 'A-111', email: 'dave@acme.example' }, { iat: now + 3600 }),
      401,
      /issued in the future/,
    );
    await refused(
      await sign({}, { iat: now - 25 * 3600 }),
      401,
      /longer ago than its trust rule accepts \(maxTokenAgeMinutes 1440\)/,
    );
    // Within the clock skew allowed for exp and nbf: accepted.
    expect((await exchange(await sign({}, { iat: now + 10 }))).statusCode).toBe(201);

    // A claim a rule pins is compared as a string, never a list or a number printed as one.
    await refused(
      await sign({ repository: ['acme/fraud'] }),
      403,
      /repository claim is not a string/,
    );
    await refused(
      await person({ sub: 'A-111', email: 'dave@acme.example', groups: 'grp-payments' }),
      403,
      /groups claim is not a list of strings/,
    );
    await refused(
      await person({ sub: 'A-111', email: 'dave@acme.example', groups: ['payments', 7] }),
      403,
      /groups claim is not a list of strings/,
    );

    // A person's ID token carrying a workload's claims is still a person's token: it never
    // becomes the service account, and a token addressed to both kinds is refused.
    const workloadClaims = { repository: 'acme/fraud', ref: 'refs/heads/main' };
    const asPerson = await exchange(
      await person({ ...workloadClaims, sub: 'A-111', email: 'dave@acme.example' }),
    );
    expect(asPerson.statusCode, asPerson.body).toBe(201);
    expect(asPerson.json()).toMatchObject({ identity: 'dave', kind: 'user' });
    await refused(
      await person(
        { ...workloadClaims, sub: 'A-111', email: 'dave@acme.example' },
        { audience: ['modelgate-sso', 'modelgate'] },
      ),
      401,
      /names both a workload rule \(modelgate\) and a people rule \(modelgate-sso\)/,
    );
    const ci = await exchange(await sign());
    expect(ci.statusCode, ci.body).toBe(201);
    expect(ci.json()).toMatchObject({ identity: 'fraud-ci', kind: 'service-account' });
    await t.composed.app.close();
  });

  it('logs people in with a password from the CLI', async () => {
    const t = await testApp(db());
    await t.call({
      method: 'POST',
      url: '/api/v1/identities',
      payload: { name: 'bea', kind: 'user', roles: ['viewer'], password: 'a long pass phrase' },
    });
    const url = await t.composed.app.listen({ port: 0, host: '127.0.0.1' });
    const work = mkdtempSync(join(tmpdir(), 'mg-pw-cli-'));
    const env = {
      ...process.env,
      MODELGATE_CONFIG: join(work, 'config.json'),
      MODELGATE_SERVER: '',
      MODELGATE_TOKEN: '',
    };
    const run = (input: string, ...args: string[]) =>
      new Promise<{ code: number; out: string }>((resolve) => {
        const child = execFile(process.execPath, [CLI, ...args], { env }, (err, stdout, stderr) =>
          resolve({
            code: err ? Number((err as { code?: number }).code) : 0,
            out: stdout + stderr,
          }),
        );
        child.stdin?.end(input);
      });
    const ok = await run(
      'a long pass phrase\n',
      'login',
      '--server',
      url,
      '--user',
      'bea',
      '--hours',
      '1',
    );
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toMatch(/logged in to .* as bea until/);
    expect((await run('', 'whoami')).out).toMatch(/name:\s+bea/);
    const wrong = await run('not the phrase\n', 'login', '--server', url, '--user', 'bea');
    expect(wrong.code).toBe(1);
    expect(wrong.out).toMatch(/wrong user name or password/);
    const empty = await run('', 'login', '--server', url, '--user', 'bea');
    expect(empty.code).toBe(2);
    expect(empty.out).toMatch(/line 1 \(password for bea\) is missing/);
    await t.composed.app.close();
  });
});
