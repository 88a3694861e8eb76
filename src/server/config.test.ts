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
  it('reads allowed endpoints and secrets from the file; the environment wins', () => {
    const config = file({
      allowedEndpoints: ['https://llm.example.com/v1', 'http://10.0.0.5:8000/'],
      secrets: { openai: 'Bearer from-file', other: 'x' },
    });
    const c = loadConfig({ config }, { MODELGATE_SECRET_OPENAI: 'Bearer from-env' });
    expect(c.allowedEndpoints).toEqual(['https://llm.example.com/v1', 'http://10.0.0.5:8000/']);
    expect(c.secret('openai')).toBe('Bearer from-env');
    expect(c.secret('other')).toBe('x');
    expect(c.secret('missing')).toBeUndefined();
    // Secret values are behind a function: nothing that serializes the config shows them.
    expect(JSON.stringify(c)).not.toContain('from-file');
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
    [{ secrets: { a: 1 } }, /secrets must map names to string values/],
    ['{not json', /server config file .*server\.json: /],
    [{ allowedEndpoints: ['ftp://x/'] }, /MODELGATE_ALLOWED_ENDPOINTS: .*http or https/],
    [{ allowedEndpoints: ['https://x/?q=1'] }, /must not have a query/],
  ])('refuses a bad file: %j', (content, message) => {
    expect(() => loadConfig({ config: file(content) }, {})).toThrow(message);
  });
});
