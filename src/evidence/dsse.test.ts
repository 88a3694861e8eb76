import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import vectors from '../../test/vectors/signing.json' with { type: 'json' };
import { readOrCreateSecretFile } from '../core/secret-file.js';
import {
  DsseError,
  decodeBase64,
  ed25519Signer,
  IN_TOTO_PAYLOAD_TYPE,
  keyidOf,
  pae,
  signEnvelope,
  verifyEnvelope,
} from './dsse.js';
import { parseStatement, STATEMENT_TYPE, statement, versionSubject } from './statement.js';

const v = vectors.dsse;
const b64url = (decimal: string) =>
  Buffer.from(BigInt(decimal).toString(16).padStart(64, '0'), 'hex').toString('base64url');
const vectorKey = createPublicKey({
  key: { kty: 'EC', crv: 'P-256', x: b64url(v.key.x), y: b64url(v.key.y) },
  format: 'jwk',
});
const ed = () => generateKeyPairSync('ed25519');

describe('DSSE', () => {
  it('encodes the pre-authentication encoding of the official vector', () => {
    expect(pae(v.payloadType, Buffer.from(v.payloadUtf8)).toString('utf8')).toBe(v.pae);
  });

  it('counts UTF-8 bytes, not characters, in the type length', () => {
    expect(pae('tÿpe', Buffer.from('x')).toString('utf8')).toBe('DSSEv1 5 tÿpe 1 x');
  });

  it("verifies the official vector's ECDSA P-256 signature and refuses any change", () => {
    const ok = verifyEnvelope(v.envelope, [{ key: vectorKey }]);
    expect(ok.payload.toString()).toBe('hello world');
    expect(ok.signedBy).toEqual([keyidOf(vectorKey)]);
    const sig = Buffer.from(v.envelope.signatures[0]!.sig, 'base64');
    sig[5] = (sig[5] ?? 0) ^ 1;
    for (const bad of [
      { ...v.envelope, payload: Buffer.from('hello World').toString('base64') },
      { ...v.envelope, payloadType: 'http://example.com/HelloWorlD' },
      { ...v.envelope, signatures: [{ sig: sig.toString('base64') }] },
    ])
      expect(() => verifyEnvelope(bad, [{ key: vectorKey }])).toThrow(/no signature verifies/);
  });

  it('signs with Ed25519 and counts each trusted key once toward a threshold', () => {
    const a = ed();
    const b = ed();
    const body = Buffer.from('{"a":1}');
    const env = signEnvelope(IN_TOTO_PAYLOAD_TYPE, body, [ed25519Signer(a.privateKey)]);
    expect(env.signatures[0]?.keyid).toBe(keyidOf(a.publicKey));
    expect(verifyEnvelope(env, [{ key: a.publicKey }]).payload.equals(body)).toBe(true);
    expect(() => verifyEnvelope(env, [{ key: b.publicKey }])).toThrow(DsseError);
    // The same signature twice is still one key.
    const twice = { ...env, signatures: [env.signatures[0]!, env.signatures[0]!] };
    expect(() => verifyEnvelope(twice, [{ key: a.publicKey }], 2)).toThrow(
      /1 trusted key\(s\) signed, 2 needed/,
    );
    const both = signEnvelope(IN_TOTO_PAYLOAD_TYPE, body, [
      ed25519Signer(a.privateKey),
      ed25519Signer(b.privateKey),
    ]);
    expect(
      verifyEnvelope(both, [{ key: a.publicKey }, { key: b.publicKey }], 2).signedBy,
    ).toHaveLength(2);
    // URL-safe base64 is accepted; a non-canonical spelling is not.
    const url = { ...env, payload: body.toString('base64url') };
    expect(verifyEnvelope(url, [{ key: a.publicKey }]).payload.equals(body)).toBe(true);
    expect(() => decodeBase64('YQ=x', 'x')).toThrow(/not base64/);
    expect(() => decodeBase64('YR==', 'x')).toThrow(/not canonical/);
    expect(() =>
      ed25519Signer(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
    ).toThrow(/must be Ed25519/);
  });

  it('refuses arbitrary input with a DsseError, never another exception', () => {
    const key = ed().publicKey;
    fc.assert(
      fc.property(fc.anything(), (x) => {
        try {
          verifyEnvelope(x, [{ key }]);
          return false;
        } catch (e) {
          return e instanceof DsseError;
        }
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string()), (text) => {
        try {
          parseStatement(Buffer.from(text));
          return true;
        } catch (e) {
          return e instanceof DsseError;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('in-toto statements', () => {
  it('names a version by its digest and parses back only well-formed statements', () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    const s = statement(versionSubject('fraud', 3, digest), 'https://example.com/p', { x: 1 });
    expect(s).toEqual({
      _type: STATEMENT_TYPE,
      subject: [{ name: 'fraud@3', digest: { sha256: 'ab'.repeat(32) } }],
      predicateType: 'https://example.com/p',
      predicate: { x: 1 },
    });
    expect(parseStatement(Buffer.from(JSON.stringify(s)))).toEqual(s);
    expect(() => versionSubject('fraud', 3, 'md5:00')).toThrow(/not a sha256 digest/);
    for (const [bad, why] of [
      [{ ...s, _type: 'https://in-toto.io/Statement/v0.1' }, /not an in-toto Statement v1/],
      [{ ...s, subject: [] }, /no subject/],
      [{ ...s, subject: [{ name: 'x' }] }, /subject 0 has no digest/],
      [{ ...s, subject: [{ digest: { sha256: 'AB' } }] }, /not lowercase hex/],
      [{ ...s, predicateType: '' }, /no predicateType/],
    ] as const)
      expect(() => parseStatement(Buffer.from(JSON.stringify(bad)))).toThrow(why);
  });
});

describe('secret files', () => {
  it('creates keys readable only by their owner and refuses keys others can read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mg-secret-'));
    const file = join(dir, 'k');
    expect(() => readOrCreateSecretFile(file, 'test key', false, () => 's')).toThrow(
      /does not exist/,
    );
    expect(readOrCreateSecretFile(file, 'test key', true, () => 'first')).toBe('first');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readOrCreateSecretFile(file, 'test key', true, () => 'second')).toBe('first');
    const open = join(dir, 'open');
    writeFileSync(open, 'x', { mode: 0o644 });
    expect(() => readOrCreateSecretFile(open, 'test key', true, () => 's')).toThrow(
      /readable by others \(mode 644\): chmod 600/,
    );
  });
});
