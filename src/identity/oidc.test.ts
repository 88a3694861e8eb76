import { describe, expect, it } from 'vitest';
import { parseOidcConfig } from './oidc.js';

const rule = (over: string) =>
  `workloads:\n  - issuer: https://token.actions.githubusercontent.com\n    jwksUrl: https://token.actions.githubusercontent.com/.well-known/jwks\n    audience: modelgate\n    serviceAccount: ci\n${over}`;

describe('workload trust configuration', () => {
  it('reads a rule with its claims and a default token lifetime', () => {
    const c = parseOidcConfig(rule('    claims: {repository: acme/fraud}\n'), 'oidc.yaml');
    expect(c.workloads[0]).toMatchObject({
      claims: { repository: 'acme/fraud' },
      tokenMinutes: 15,
    });
  });

  it('refuses rules that trust too much or fetch keys insecurely, naming the field', () => {
    expect(() => parseOidcConfig(rule(''), 'oidc.yaml')).toThrow(
      /oidc.yaml: workloads\[0\].claims must name at least one claim/,
    );
    expect(() =>
      parseOidcConfig(
        rule('    claims: {repository: a/b}\n').replace(
          'https://token.actions.githubusercontent.com/.well',
          'http://example.com/.well',
        ),
        'f',
      ),
    ).toThrow(/jwksUrl must be https/);
    expect(() => parseOidcConfig(rule('    claims: {r: a}\n    tokenMinutes: 600\n'), 'f')).toThrow(
      /tokenMinutes must be a whole number from 1 to 60/,
    );
    expect(() => parseOidcConfig('workloads: 3', 'f')).toThrow(/expected a list/);
    expect(() => parseOidcConfig(rule('    claims: {repository: [1]}\n'), 'f')).toThrow(
      /claims must map/,
    );
  });

  it('reads a maximum token age, a day by default', () => {
    const c = parseOidcConfig(rule('    claims: {r: a}\n    maxTokenAgeMinutes: 60\n'), 'f');
    expect(c.workloads[0]?.maxTokenAgeMinutes).toBe(60);
    expect(
      parseOidcConfig(rule('    claims: {r: a}\n'), 'f').workloads[0]?.maxTokenAgeMinutes,
    ).toBe(1440);
    expect(() =>
      parseOidcConfig(rule('    claims: {r: a}\n    maxTokenAgeMinutes: 0\n'), 'f'),
    ).toThrow(/maxTokenAgeMinutes must be a whole number from 1 to 10080/);
  });

  it('refuses workload and people rules of one issuer sharing an audience', () => {
    const people = (audience: string) =>
      `people:\n  - issuer: https://token.actions.githubusercontent.com\n    jwksUrl: https://token.actions.githubusercontent.com/.well-known/jwks\n    audience: ${audience}\n`;
    expect(() =>
      parseOidcConfig(rule('    claims: {r: a}\n') + people('modelgate'), 'oidc.yaml'),
    ).toThrow(/oidc.yaml: workloads\[0\] and people\[0\] .* an audience of their own/);
    expect(
      parseOidcConfig(rule('    claims: {r: a}\n') + people('modelgate-sso'), 'f').people,
    ).toHaveLength(1);
  });
});
