import {
  createHash,
  createPrivateKey,
  createPublicKey,
  sign as ed25519Sign,
  verify as ed25519Verify,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { decodeBase64 } from './base64.js';

// C2SP signed-note v1 (c2sp.org/signed-note) with two signature types: plain Ed25519 (0x01), as
// a log signs its checkpoints, and timestamped Ed25519 cosignatures (0x04, c2sp.org/tlog-cosignature),
// as witnesses sign them. Parsing follows golang.org/x/mod/sumdb/note.

/** Signature type byte of a plain Ed25519 note signature. */
export const ED25519 = 0x01;

/** Signature type byte of a timestamped Ed25519 checkpoint cosignature (tlog-cosignature v1). */
export const COSIGNATURE_V1 = 0x04;

/** Stable codes of note errors: a bad note, no trusted signature, a bad trusted signature, a bad key. */
export type NoteErrorCode =
  | 'MALFORMED_NOTE'
  | 'UNVERIFIED_NOTE'
  | 'INVALID_SIGNATURE'
  | 'INVALID_KEY';

/** Error thrown by note parsing, verification, signing and key handling. */
export class NoteError extends Error {
  override name = 'NoteError';

  constructor(
    readonly code: NoteErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A key that signs note text under a name; `keyId` is the 4-byte key ID as an unsigned integer. */
export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  /** Signature bytes (without the key ID) over the note text. */
  sign(text: Buffer): Buffer;
}

/** A trusted key that checks note signatures made under its name and key ID. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  /** Whether `signature` (without the key ID) is valid over the note text. */
  verify(text: Buffer, signature: Buffer): boolean;
}

/** One signature line of a note, decoded. */
export interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  /** Signature bytes after the 4-byte key ID. */
  readonly signature: Buffer;
}

/** A note split into its text and signature lines, not yet verified. */
export interface ParsedNote {
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

/** A note whose text carries at least one valid signature by a trusted key. */
export interface OpenedNote {
  readonly text: string;
  /** Valid signatures by trusted keys, one per key. */
  readonly verified: readonly NoteSignature[];
  /** Signatures by keys the caller did not name, unchecked, duplicates dropped. */
  readonly unverified: readonly NoteSignature[];
}

// Go's note package caps a note at 100 signatures so parsing stays cheap; the spec asks for >= 16.
const MAX_SIGNATURES = 100;
const SIGNATURE_PREFIX = '\u2014 ';
const ED25519_SIGNATURE_SIZE = 64;
const COSIGNATURE_SIZE = 8 + ED25519_SIGNATURE_SIZE;
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

// biome-ignore lint/suspicious/noControlCharactersInRegex: notes may not contain these, so they are what is refused
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// Go's unicode.IsSpace: ASCII spaces, NEL, and the Unicode separator categories.
const SPACE = /[\s\u0085\p{Z}]/u;

/** Whether a key name is allowed: non-empty, no spaces of any kind, no '+', no control characters. */
export function isValidKeyName(name: string): boolean {
  return (
    name !== '' &&
    !name.includes('+') &&
    !SPACE.test(name) &&
    !CONTROL.test(name) &&
    !LONE_SURROGATE.test(name)
  );
}

/** Key ID: the first 4 bytes, big-endian, of SHA-256(name || 0x0A || type || public key). */
export function keyId(name: string, type: number, publicKey: Uint8Array): number {
  return createHash('sha256')
    .update(name)
    .update(Buffer.from([0x0a, type]))
    .update(publicKey)
    .digest()
    .readUInt32BE(0);
}

function hex8(id: number): string {
  return id.toString(16).padStart(8, '0');
}

function ed25519PrivateKey(seed: Uint8Array): KeyObject {
  return createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519, seed]),
    format: 'der',
    type: 'pkcs8',
  });
}

function ed25519PublicBytes(privateKey: KeyObject): Buffer {
  return createPublicKey(privateKey)
    .export({ format: 'der', type: 'spki' })
    .subarray(SPKI_ED25519.length);
}

function checkType(type: number): void {
  if (type !== ED25519 && type !== COSIGNATURE_V1) {
    throw new NoteError('INVALID_KEY', `unsupported signature type 0x${type.toString(16)}`);
  }
}

/** A new signer key string `PRIVATE+KEY+<name>+<hex id>+<base64(type || seed)>`, from a random seed unless one is given. */
export function generateSignerKey(
  name: string,
  type: number = ED25519,
  seed: Uint8Array = randomBytes(32),
): string {
  if (!isValidKeyName(name))
    throw new NoteError('INVALID_KEY', `invalid key name ${JSON.stringify(name)}`);
  checkType(type);
  if (seed.length !== 32) throw new NoteError('INVALID_KEY', 'an Ed25519 seed has 32 bytes');
  const id = keyId(name, type, ed25519PublicBytes(ed25519PrivateKey(seed)));
  return `PRIVATE+KEY+${name}+${hex8(id)}+${Buffer.concat([Buffer.from([type]), seed]).toString('base64')}`;
}

/** A parsed key string: name, key ID, type and key bytes (seed for a signer key, public key for a verifier key). */
interface ParsedKey {
  name: string;
  keyId: number;
  type: number;
  key: Buffer;
}

function parseKey(fields: string[], what: string): ParsedKey {
  const [name, idText, keyText] = fields;
  const bytes = keyText === undefined ? undefined : decodeBase64(keyText);
  if (
    fields.length !== 3 ||
    name === undefined ||
    !isValidKeyName(name) ||
    !/^[0-9a-f]{8}$/.test(idText ?? '') ||
    !bytes ||
    bytes.length !== 33
  ) {
    throw new NoteError('INVALID_KEY', `malformed ${what}`);
  }
  const type = bytes[0]!;
  checkType(type);
  return { name, keyId: Number.parseInt(idText!, 16), type, key: bytes.subarray(1) };
}

/** Splits at the first `count - 1` plus signs only: the base64 key in the last field may contain '+'. */
function splitKey(key: string, count: number): string[] {
  const fields: string[] = [];
  let rest = key;
  for (let at = rest.indexOf('+'); fields.length < count - 1 && at >= 0; at = rest.indexOf('+')) {
    fields.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
  }
  fields.push(rest);
  return fields;
}

function parseSignerKey(skey: string): ParsedKey & { privateKey: KeyObject; publicKey: Buffer } {
  const fields = splitKey(skey, 5);
  if (fields[0] !== 'PRIVATE' || fields[1] !== 'KEY') {
    throw new NoteError('INVALID_KEY', 'a signer key starts with PRIVATE+KEY+');
  }
  const parsed = parseKey(fields.slice(2), 'signer key');
  const privateKey = ed25519PrivateKey(parsed.key);
  const publicKey = ed25519PublicBytes(privateKey);
  if (keyId(parsed.name, parsed.type, publicKey) !== parsed.keyId) {
    throw new NoteError('INVALID_KEY', 'signer key ID does not match the key');
  }
  return { ...parsed, privateKey, publicKey };
}

/** The verifier key string `<name>+<hex id>+<base64(type || public key)>` of a signer key. */
export function verifierKeyOf(skey: string): string {
  const { name, keyId: id, type, publicKey } = parseSignerKey(skey);
  return `${name}+${hex8(id)}+${Buffer.concat([Buffer.from([type]), publicKey]).toString('base64')}`;
}

/** The message a cosignature signs: `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint text. */
export function cosignatureMessage(timestamp: number, checkpointText: string | Uint8Array): Buffer {
  return Buffer.concat([
    Buffer.from(`cosignature/v1\ntime ${timestamp}\n`),
    Buffer.from(checkpointText),
  ]);
}

/** The POSIX-seconds timestamp a cosignature carries, or undefined if the bytes are not a v1 cosignature. */
export function cosignatureTimestamp(signature: Uint8Array): number | undefined {
  if (signature.length !== COSIGNATURE_SIZE) return undefined;
  const t = Buffer.from(signature).readBigUInt64BE(0);
  // The spec caps timestamps at 2^63 - 1; refusing beyond 2^53 - 1 (year 285 million) keeps them numbers.
  return t <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(t) : undefined;
}

/** Options of a signer: the clock a cosigner reads its timestamp from (POSIX seconds). */
export interface SignerOptions {
  readonly now?: () => number;
}

/** A note signer for a signer key string: plain Ed25519 for type 0x01, a timestamped cosigner for type 0x04. */
export function noteSigner(skey: string, options: SignerOptions = {}): NoteSigner {
  const { name, keyId: id, type, privateKey } = parseSignerKey(skey);
  if (type === ED25519)
    return { name, keyId: id, sign: (text) => ed25519Sign(null, text, privateKey) };
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  return {
    name,
    keyId: id,
    sign(text) {
      const t = now();
      // Witness responses must not carry timestamp 0.
      if (!Number.isSafeInteger(t) || t <= 0) {
        throw new NoteError(
          'INVALID_KEY',
          `cosignature timestamp must be a positive integer, got ${t}`,
        );
      }
      const stamp = Buffer.alloc(8);
      stamp.writeBigUInt64BE(BigInt(t));
      return Buffer.concat([stamp, ed25519Sign(null, cosignatureMessage(t, text), privateKey)]);
    },
  };
}

/** A note verifier for a verifier key string: plain Ed25519 for type 0x01, a v1 cosignature for type 0x04. */
export function noteVerifier(vkey: string): NoteVerifier {
  const { name, keyId: id, type, key } = parseKey(splitKey(vkey, 3), 'verifier key');
  if (keyId(name, type, key) !== id)
    throw new NoteError('INVALID_KEY', 'verifier key ID does not match the key');
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({
      key: Buffer.concat([SPKI_ED25519, key]),
      format: 'der',
      type: 'spki',
    });
  } catch {
    throw new NoteError('INVALID_KEY', 'verifier key is not an Ed25519 public key');
  }
  if (type === ED25519) {
    return {
      name,
      keyId: id,
      verify: (text, signature) =>
        signature.length === ED25519_SIGNATURE_SIZE &&
        ed25519Verify(null, text, publicKey, signature),
    };
  }
  return {
    name,
    keyId: id,
    verify(text, signature) {
      const t = cosignatureTimestamp(signature);
      return (
        t !== undefined &&
        ed25519Verify(null, cosignatureMessage(t, text), publicKey, signature.subarray(8))
      );
    },
  };
}

function checkText(text: string, what: string): void {
  if (CONTROL.test(text) || LONE_SURROGATE.test(text)) {
    throw new NoteError('MALFORMED_NOTE', `${what} has a control character or invalid UTF-16`);
  }
}

/** Signs note text (which must end in a newline) and returns the note: text, blank line, one line per signer. */
export function signNote(text: string, signers: readonly NoteSigner[]): string {
  if (!text.endsWith('\n'))
    throw new NoteError('MALFORMED_NOTE', 'note text must end with a newline');
  checkText(text, 'note text');
  const bytes = Buffer.from(text);
  const lines = signers.map((signer) => {
    if (!isValidKeyName(signer.name)) {
      throw new NoteError('INVALID_KEY', `invalid key name ${JSON.stringify(signer.name)}`);
    }
    const id = Buffer.alloc(4);
    id.writeUInt32BE(signer.keyId);
    const payload = Buffer.concat([id, signer.sign(bytes)]).toString('base64');
    return `${SIGNATURE_PREFIX}${signer.name} ${payload}\n`;
  });
  return `${text}\n${lines.join('')}`;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Splits a note into its text and decoded signature lines without verifying anything; throws MALFORMED_NOTE. */
export function parseNote(note: string | Uint8Array): ParsedNote {
  let s: string;
  if (typeof note === 'string') {
    s = note;
  } else {
    try {
      s = UTF8.decode(note);
    } catch {
      throw new NoteError('MALFORMED_NOTE', 'note is not valid UTF-8');
    }
  }
  checkText(s, 'note');
  // The text ends at the last blank line: it may contain blank lines, signature lines cannot.
  const split = s.lastIndexOf('\n\n');
  if (split < 0)
    throw new NoteError('MALFORMED_NOTE', 'note has no blank line before its signatures');
  const text = s.slice(0, split + 1);
  const block = s.slice(split + 2);
  if (!block.endsWith('\n')) {
    throw new NoteError('MALFORMED_NOTE', 'note must end with a newline-terminated signature line');
  }
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) {
    throw new NoteError('MALFORMED_NOTE', `note has more than ${MAX_SIGNATURES} signatures`);
  }
  const signatures = lines.map((line): NoteSignature => {
    const space = line.indexOf(' ', SIGNATURE_PREFIX.length);
    const name = line.slice(SIGNATURE_PREFIX.length, space);
    const bytes = decodeBase64(line.slice(space + 1));
    if (
      !line.startsWith(SIGNATURE_PREFIX) ||
      space < 0 ||
      !isValidKeyName(name) ||
      !bytes ||
      bytes.length < 5
    ) {
      throw new NoteError('MALFORMED_NOTE', `malformed signature line ${JSON.stringify(line)}`);
    }
    return { name, keyId: bytes.readUInt32BE(0), signature: bytes.subarray(4) };
  });
  return { text, signatures };
}

/**
 * Parses a note and checks its signatures against trusted verifiers: signatures by other keys
 * are kept aside unchecked, a bad signature by a trusted key rejects the note
 * (INVALID_SIGNATURE), and so does the absence of any trusted signature (UNVERIFIED_NOTE).
 */
export function openNote(
  note: string | Uint8Array,
  verifiers: readonly NoteVerifier[],
): OpenedNote {
  const byKey = new Map<string, NoteVerifier>();
  for (const v of verifiers) {
    const k = `${v.name} ${v.keyId}`;
    if (byKey.has(k))
      throw new NoteError('INVALID_KEY', `two verifiers for ${v.name}+${hex8(v.keyId)}`);
    byKey.set(k, v);
  }
  const { text, signatures } = parseNote(note);
  const bytes = Buffer.from(text);
  const verified: NoteSignature[] = [];
  const unverified: NoteSignature[] = [];
  const seenKeys = new Set<string>();
  const seenLines = new Set<string>();
  for (const sig of signatures) {
    const k = `${sig.name} ${sig.keyId}`;
    const v = byKey.get(k);
    if (!v) {
      const line = `${k} ${sig.signature.toString('base64')}`;
      if (!seenLines.has(line)) unverified.push(sig);
      seenLines.add(line);
      continue;
    }
    // One signature per trusted key counts; a repeat is dropped as Go's note package does.
    if (seenKeys.has(k)) continue;
    seenKeys.add(k);
    if (!v.verify(bytes, sig.signature)) {
      throw new NoteError(
        'INVALID_SIGNATURE',
        `invalid signature by ${sig.name}+${hex8(sig.keyId)}`,
      );
    }
    verified.push(sig);
  }
  if (verified.length === 0)
    throw new NoteError('UNVERIFIED_NOTE', 'no signature by a trusted key');
  return { text, verified, unverified };
}
