import {
  createHash,
  createPublicKey,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
} from 'node:crypto';

/** The DSSE payload type of in-toto statements. */
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

/** A DSSE envelope (secure-systems-lab/dsse envelope.md v1.0.2). */
export interface Envelope {
  payload: string;
  payloadType: string;
  signatures: { keyid?: string; sig: string }[];
}

/** Signs the pre-authentication encoding of an envelope: one key, one signature. */
export interface Signer {
  readonly keyid: string;
  sign(pae: Buffer): Buffer;
}

/** A public key an envelope may be signed with; `keyid` is only a hint. */
export interface TrustedKey {
  keyid?: string;
  key: KeyObject;
}

/** Why an envelope did not verify. */
export class DsseError extends Error {
  override name = 'DsseError';
}

/**
 * The DSSE pre-authentication encoding: `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`,
 * lengths in bytes (UTF-8 for the type), ASCII decimal without leading zeros.
 */
export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'ascii'),
    type,
    Buffer.from(` ${payload.length} `, 'ascii'),
    payload,
  ]);
}

/** `sha256:<hex>` of a public key's SubjectPublicKeyInfo DER: a stable key id. */
export function keyidOf(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return `sha256:${createHash('sha256')
    .update(pub.export({ type: 'spki', format: 'der' }))
    .digest('hex')}`;
}

/** An Ed25519 signer for DSSE envelopes. */
export function ed25519Signer(privateKey: KeyObject): Signer {
  if (privateKey.asymmetricKeyType !== 'ed25519')
    throw new DsseError(`an attestation key must be Ed25519, not ${privateKey.asymmetricKeyType}`);
  const keyid = keyidOf(privateKey);
  return { keyid, sign: (data) => nodeSign(null, data, privateKey) };
}

/** Signs `payload` as `payloadType` with every signer. */
export function signEnvelope(payloadType: string, payload: Buffer, signers: Signer[]): Envelope {
  const data = pae(payloadType, payload);
  return {
    payload: payload.toString('base64'),
    payloadType,
    signatures: signers.map((s) => ({ keyid: s.keyid, sig: s.sign(data).toString('base64') })),
  };
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const B64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/** Decodes standard or URL-safe base64 (DSSE verifiers accept both), refusing anything else. */
export function decodeBase64(s: unknown, what: string): Buffer {
  if (typeof s !== 'string' || !(B64.test(s) || B64URL.test(s)))
    throw new DsseError(`${what} is not base64`);
  const b = Buffer.from(s, B64.test(s) ? 'base64' : 'base64url');
  // Node ignores stray padding and trailing bits; re-encode to refuse a non-canonical spelling.
  const again = B64.test(s) ? b.toString('base64') : b.toString('base64url');
  if (again.replace(/=+$/, '') !== s.replace(/=+$/, ''))
    throw new DsseError(`${what} is not canonical base64`);
  return b;
}

function verifyOne(key: KeyObject, data: Buffer, sig: Buffer): boolean {
  try {
    if (key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448')
      return nodeVerify(null, data, key, sig);
    if (key.asymmetricKeyType === 'ec') {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const hash = curve === 'secp384r1' ? 'sha384' : curve === 'secp521r1' ? 'sha512' : 'sha256';
      // Raw r||s (what the DSSE vector uses) or DER.
      return (
        nodeVerify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, sig) ||
        nodeVerify(hash, data, { key, dsaEncoding: 'der' }, sig)
      );
    }
    return nodeVerify('sha256', data, key, sig);
  } catch {
    return false;
  }
}

/** What a verified envelope carries: the exact signed bytes, and which keys signed them. */
export interface Verified {
  payloadType: string;
  payload: Buffer;
  /** Key ids (keyidOf) of the trusted keys with a valid signature, each once. */
  signedBy: string[];
}

/**
 * Verifies a DSSE envelope: at least `threshold` distinct trusted keys must have signed the
 * pre-authentication encoding. Returns the payload bytes that were verified; callers parse
 * those, never the envelope again. Throws DsseError saying what is wrong.
 */
export function verifyEnvelope(env: unknown, trusted: TrustedKey[], threshold = 1): Verified {
  if (typeof env !== 'object' || env === null) throw new DsseError('the envelope is not an object');
  const e = env as Partial<Envelope>;
  if (typeof e.payloadType !== 'string' || e.payloadType === '')
    throw new DsseError('the envelope has no payloadType');
  const payload = decodeBase64(e.payload, 'the payload');
  if (!Array.isArray(e.signatures) || e.signatures.length === 0)
    throw new DsseError('the envelope has no signatures');
  const data = pae(e.payloadType, payload);
  const signedBy = new Set<string>();
  e.signatures.forEach((s, i) => {
    const sig = decodeBase64((s as { sig?: unknown })?.sig, `signature ${i}`);
    for (const t of trusted) {
      const id = keyidOf(t.key);
      if (!signedBy.has(id) && verifyOne(t.key, data, sig)) signedBy.add(id);
    }
  });
  if (signedBy.size < threshold)
    throw new DsseError(
      signedBy.size === 0
        ? `no signature verifies with a trusted key (${e.signatures.length} signature(s), ${trusted.length} key(s))`
        : `${signedBy.size} trusted key(s) signed, ${threshold} needed`,
    );
  return { payloadType: e.payloadType, payload, signedBy: [...signedBy] };
}
