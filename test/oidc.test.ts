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
  opts: { audience?: string; expires?: string; key?: webcrypto.CryptoKey; kid?: string } = {},
) {
  return new SignJWT({ ...claims, ...over })
    .setProtectedHeader({ alg: 'RS256', kid: opts.kid ?? 'k1' })
    .setIssuer(issuer)
    .setAudience(opts.audience ?? 'modelgate')
    .setIssuedAt()
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
