import { afterEach, describe, expect, it } from 'vitest';
import { type ChatServer, startChatServer } from '../../../test/helpers/chat-server.js';
import { isModelgateError } from '../../core/errors.js';
import { ChatClient } from './chat-client.js';
import { EgressPolicy, isBlockedAddress } from './egress.js';

const servers: ChatServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

const ask = (c: ChatClient) =>
  c.complete(
    [{ role: 'user', content: 'hello' }],
    { maxTokens: 10, temperature: 0 },
    new AbortController().signal,
  );

describe('isBlockedAddress', () => {
  it.each([
    ['127.0.0.1', true],
    ['10.1.2.3', true],
    ['172.20.0.1', true],
    ['192.168.1.1', true],
    ['169.254.169.254', true],
    ['100.64.0.1', true],
    ['0.0.0.0', true],
    ['::1', true],
    ['fd00::1', true],
    ['fe80::1', true],
    ['::ffff:127.0.0.1', true],
    ['::ffff:10.0.0.1', true],
    ['::ffff:7f00:1', true],
    ['::7f00:1', true],
    ['::127.0.0.1', true],
    ['2002:7f00:1::1', true],
    ['2001:0:4136:e378::1', true],
    ['not-an-ip', true],
    ['8.8.8.8', false],
    ['1.1.1.1', false],
    ['2606:4700:4700::1111', false],
    ['::ffff:8.8.8.8', false],
  ])('%s blocked: %s', (address, blocked) => {
    expect(isBlockedAddress(address)).toBe(blocked);
  });
});

describe('EgressPolicy.check', () => {
  const policy = new EgressPolicy(['https://api.example.com/v1', 'http://10.0.0.5:8000/']);

  it('allows endpoints under a prefix, at a path boundary', () => {
    expect(policy.check('https://api.example.com/v1/chat/completions').resolve).toBe(true);
    expect(policy.check('https://API.example.com/v1').url.href).toBe('https://api.example.com/v1');
    expect(policy.check('http://10.0.0.5:8000/v1').resolve).toBe(false);
  });

  it.each([
    'https://api.example.com/v10/chat/completions',
    'https://api.example.com.evil.org/v1',
    'http://api.example.com/v1',
    'https://api.example.com:8443/v1',
    'http://10.0.0.6:8000/v1',
    'http://127.0.0.1:8000/v1',
  ])('refuses %s', (url) => {
    try {
      policy.check(url);
      expect.unreachable();
    } catch (e) {
      expect(isModelgateError(e, 'ENDPOINT_NOT_ALLOWED')).toBe(true);
      expect((e as Error).message).toMatch(/MODELGATE_ALLOWED_ENDPOINTS/);
    }
  });

  it('says when nothing is allowed, and refuses URLs with credentials', () => {
    expect(() => new EgressPolicy([]).check('https://api.example.com/v1')).toThrow(
      /no outbound endpoints are allowed/,
    );
    expect(() => policy.check('https://user:pw@api.example.com/v1')).toThrow(/credentials/);
    expect(() => new EgressPolicy(['ftp://x/'])).toThrow(/http or https/);
  });

  // A server may decode what the URL parser keeps encoded: `/v1/..%2F..%2Fadmin` is under
  // `/v1` to the check and `/admin` to such a server. Refused, whatever the spelling.
  it.each([
    'https://api.example.com/v1/..%2F..%2Fadmin',
    'https://api.example.com/v1/..%2f..%2fadmin',
    'https://api.example.com/v1/%2e%2e%2fadmin',
    'https://api.example.com/v1/%2E%2E/admin',
    'https://api.example.com/v1/.%2e/admin',
    'https://api.example.com/v1/..%5Cadmin',
    'https://api.example.com/v1/%5c..%5cadmin',
    'https://api.example.com/v1/%252e%252e%252fadmin',
    'https://api.example.com/v1/chat%00/completions',
    'https://api.example.com/v1/x/../../admin',
    'https://api.example.com/v1/x/..',
    'https://api.example.com/v1/./chat/completions',
    'https://api.example.com/v1/..;/admin',
    'https://api.example.com/v1\\..\\admin',
    'https://api.example.com/v1/a\t/b',
    'https://user@api.example.com/v1',
    'https://user:pw@api.example.com/v1',
    'https://api.example.com@evil.example/v1',
  ])('refuses the ambiguous spelling %s', (url) => {
    try {
      policy.check(url);
      expect.unreachable();
    } catch (e) {
      expect(isModelgateError(e, 'ENDPOINT_NOT_ALLOWED')).toBe(true);
      expect((e as Error).message).not.toContain('pw@');
    }
  });

  it('reaches exactly the URL it checked, with the default port written or not', () => {
    for (const url of [
      'https://api.example.com:443/v1/chat/completions',
      'https://api.example.com:0443/v1/chat/completions',
      'HTTPS://API.EXAMPLE.COM/v1/chat/completions',
    ])
      expect(policy.check(url).url.href).toBe('https://api.example.com/v1/chat/completions');
    expect(() => new EgressPolicy(['https://api.example.com/v1/..%2Fx'])).toThrow(
      /percent-encoded slash/,
    );
  });
});

describe('ChatClient over loopback', () => {
  it('talks to an allowed server and retries a failing one', async () => {
    const s = await startChatServer({ variant: 'hardened', failFirst: 2 });
    servers.push(s);
    const c = new ChatClient(new EgressPolicy([s.url]), s.url, 'm', {}, { backoffMs: 5 });
    const r = await ask(c);
    c.close();
    expect(r.content).toMatch(/sorry/);
    expect(r.retries).toBe(2);
    expect(s.requests()).toBe(3);
  });

  it('refuses an encoded traversal under an allowed prefix before sending anything', async () => {
    const s = await startChatServer({ variant: 'vulnerable' });
    servers.push(s);
    for (const endpoint of [`${s.url}/..%2F..%2Fadmin`, `${s.url}/%2e%2e%5cadmin`])
      expect(() => new ChatClient(new EgressPolicy([s.url]), endpoint, 'm', {})).toThrow(
        /percent-encoded/,
      );
    expect(s.requests()).toBe(0);
  });

  it('refuses a server that is not allowed before sending anything', async () => {
    const s = await startChatServer({ variant: 'vulnerable' });
    servers.push(s);
    expect(
      () => new ChatClient(new EgressPolicy(['https://api.example.com/']), s.url, 'm', {}),
    ).toThrow(/not under any allowed prefix/);
    expect(s.requests()).toBe(0);
  });

  it('refuses a host name whose DNS answer is loopback, even when its prefix is allowed', async () => {
    const s = await startChatServer({ variant: 'vulnerable' });
    servers.push(s);
    const byName = s.url.replace('127.0.0.1', 'localhost');
    const c = new ChatClient(new EgressPolicy([byName]), byName, 'm', {}, { retries: 0 });
    await expect(ask(c)).rejects.toThrow(/resolves to .*loopback/);
    c.close();
    expect(s.requests()).toBe(0);
  });

  it('does not follow a redirect to an endpoint that is not allowed', async () => {
    const target = await startChatServer({ variant: 'vulnerable' });
    const s = await startChatServer({
      variant: 'hardened',
      redirectTo: `${target.url}/chat/completions`,
    });
    servers.push(target, s);
    const c = new ChatClient(new EgressPolicy([s.url]), s.url, 'm', {}, { retries: 0 });
    const err = await ask(c).catch((e: unknown) => e);
    c.close();
    expect(isModelgateError(err, 'ENDPOINT_NOT_ALLOWED')).toBe(true);
    expect(s.requests()).toBe(1);
    expect(target.requests()).toBe(0);
  });

  it('follows a 307 to another allowed endpoint', async () => {
    const target = await startChatServer({ variant: 'hardened' });
    const s = await startChatServer({
      variant: 'vulnerable',
      redirectTo: `${target.url}/chat/completions`,
    });
    servers.push(target, s);
    const c = new ChatClient(new EgressPolicy([s.url, target.url]), s.url, 'm', {
      'x-api-key': 'secret-value',
    });
    expect((await ask(c)).content).toMatch(/sorry/);
    c.close();
    expect(target.requests()).toBe(1);
    // The credential went to the origin it was given for, not to the redirect's.
    expect(s.lastHeaders()['x-api-key']).toBe('secret-value');
    expect(target.lastHeaders()['x-api-key']).toBeUndefined();
  });

  it('sends credentials on a same-origin redirect only where they are bound', async () => {
    const s = await startChatServer({
      variant: 'hardened',
      redirectTo: '/v1/admin/chat/completions',
    });
    servers.push(s);
    // Outbound calls may go anywhere under /v1; the secret only to /v1/chat.
    const c = new ChatClient(
      new EgressPolicy([s.url]),
      s.url,
      'm',
      { 'x-api-key': 'secret-value' },
      { headersAllowedAt: (url) => url.startsWith(`${s.url}/chat/`) },
    );
    expect((await ask(c)).content).toMatch(/sorry/);
    c.close();
    expect(s.requests()).toBe(2);
    // The answer came from /admin, which the secret is not bound to: it was not sent there.
    expect(s.lastHeaders()['x-api-key']).toBeUndefined();
  });

  it('times out a server that does not answer', async () => {
    const s = await startChatServer({ variant: 'hardened', delayMs: 2000 });
    servers.push(s);
    const c = new ChatClient(
      new EgressPolicy([s.url]),
      s.url,
      'm',
      {},
      { timeoutMs: 100, retries: 0 },
    );
    await expect(ask(c)).rejects.toThrow(/no answer within 100 ms/);
    c.close();
  });
});
