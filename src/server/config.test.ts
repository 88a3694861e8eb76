import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

function file(content: unknown): string {
  const p = join(mkdtempSync(join(tmpdir(), 'mg-config-')), 'server.json');
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

describe('server config file and outbound settings', () => {
  it('reads allowed endpoints and secrets, each bound to endpoints and headers; the environment wins', () => {
    const config = file({
      allowedEndpoints: ['https://llm.example.com/v1', 'http://10.0.0.5:8000/'],
      secrets: {
        openai: { value: 'Bearer from-file', endpoints: ['https://llm.example.com/v1'] },
        other: { value: 'x', endpoints: ['http://10.0.0.5:8000/'], headers: ['X-Api-Key'] },
      },
    });
    const c = loadConfig(
      { config },
      {
        MODELGATE_SECRET_OPENAI: 'Bearer from-env',
        MODELGATE_SECRET_OPENAI_ENDPOINTS: 'https://api.openai.com/v1',
      },
    );
    expect(c.allowedEndpoints).toEqual(['https://llm.example.com/v1', 'http://10.0.0.5:8000/']);
    expect(c.secret('openai')).toMatchObject({
      value: 'Bearer from-env',
      headers: ['Authorization'],
    });
    expect(c.secret('openai')?.endpoints.prefixes).toEqual(['https://api.openai.com/v1']);
    expect(c.secret('other')).toMatchObject({ value: 'x', headers: ['X-Api-Key'] });
    expect(c.secret('missing')).toBeUndefined();
    // Secret values are behind a function: nothing that serializes the config shows them.
    expect(JSON.stringify(c)).not.toContain('from-file');
    // A secret that names no endpoint is refused at start, saying how to bind it.
    expect(() => loadConfig({}, { MODELGATE_SECRET_GATEWAY: 'Bearer x' })).toThrow(
      /MODELGATE_SECRET_GATEWAY \(set MODELGATE_SECRET_GATEWAY_ENDPOINTS to the URL prefixes it may be sent to\)/,
    );
    expect(() =>
      loadConfig(
        {},
        {
          MODELGATE_SECRET_GATEWAY: 'Bearer x',
          MODELGATE_SECRET_GATEWAY_ENDPOINTS: 'https://gw.example/v1',
          MODELGATE_SECRET_GATEWAY_HEADERS: 'Bad:Header',
        },
      ),
    ).toThrow(/must be header names/);
    const env = loadConfig(
      {},
      {
        MODELGATE_SERVER_CONFIG: config,
        MODELGATE_ALLOWED_ENDPOINTS: 'https://a.example/v1, https://b.example/',
      },
    );
    expect(env.allowedEndpoints).toEqual(['https://a.example/v1', 'https://b.example/']);
    expect(loadConfig({}, {}).allowedEndpoints).toEqual([]);
  });

  it.each([
    [{ allowedEndpoint: [] }, /unknown setting "allowedEndpoint"/],
    [{ allowedEndpoints: [1] }, /allowedEndpoints must be a list of URL prefixes/],
    [{ secrets: { a: 1 } }, /secret "a" must be \{"value": .*"endpoints"/],
    [{ secrets: { a: 'Bearer unbound' } }, /secret "a" must be \{"value"/],
    [{ secrets: { a: { value: 'x', endpoints: [] } } }, /must name the endpoint URL prefixes/],
    ['{not json', /server config file .*server\.json: /],
    [{ allowedEndpoints: ['ftp://x/'] }, /MODELGATE_ALLOWED_ENDPOINTS: .*http or https/],
    [{ allowedEndpoints: ['https://x/?q=1'] }, /must not have a query/],
  ])('refuses a bad file: %j', (content, message) => {
    expect(() => loadConfig({ config: file(content) }, {})).toThrow(message);
  });
});
