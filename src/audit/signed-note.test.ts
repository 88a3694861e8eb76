import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  COSIGNATURE_V1,
  cosignatureMessage,
  cosignatureTimestamp,
  ED25519,
  generateSignerKey,
  isValidKeyName,
  keyId,
  NoteError,
  type NoteErrorCode,
  noteSigner,
  noteVerifier,
  openNote,
  parseNote,
  signNote,
  verifierKeyOf,
} from './signed-note.js';

const signing = JSON.parse(
  readFileSync(new URL('../../test/vectors/signing.json', import.meta.url), 'utf8'),
) as {
  signedNoteVerify: { vkey: string; note: string };
  signedNoteSign: { skey: string; text: string; signatureLine: string };
};

/** The public key of a verifier key string (its base64 part may itself contain '+'). */
const publicKeyOf = (vkey: string) =>
  Buffer.from(vkey.split('+').slice(2).join('+'), 'base64').subarray(1);
const seed = (label: string) => createHash('sha256').update(label).digest();
const catchCode = (f: () => unknown): NoteErrorCode | undefined => {
  try {
    f();
  } catch (e) {
    if (e instanceof NoteError) return e.code;
    throw e;
  }
  return undefined;
};

// Derived vectors of docs (reference §3, §4): Modelgate's own, not official, but fixed.
const CHECKPOINT = 'registry.example/audit\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n';
const LOG_VKEY = 'registry.example/audit+003f7782+AV2w7s3cs0lQiXAPKVicBzzMpYh650nS7hRg3OZOBYyV';
const LOG_LINE =
  '\u2014 registry.example/audit AD93gm0rGhyLqMKvCUuX4s+4BNePDaFCstKds59Xe3NaGCRvfp941/eYPC4H9WMMwNKHW8PZUkJ1tcDDldkvljBbQg0=\n';
const WITNESS_VKEY = 'witness.example/w1+9d763941+BFDT3CiX4k4G+slZH2zB5FUh8Gel8ihGs+fxYgehwI77';
const WITNESS_LINE =
  '\u2014 witness.example/w1 nXY5QQAAAABpVbkAeeUi1R05SBoLducdAhm99sUwdZr6f3eVLn3SBllmCWUdUvl2tqHgsbjMj92oTx3epOOKNmdq5ePhB1VUO+LvAA==\n';

describe('signed note (C2SP signed-note v1)', () => {
  it('verifies the C2SP signed-note example', () => {
    const { vkey, note } = signing.signedNoteVerify;
    const opened = openNote(note, [noteVerifier(vkey)]);
    expect(opened.text).toBe('This is an example message.\n');
    expect(opened.verified.map((s) => [s.name, s.keyId.toString(16)])).toEqual([
      ['example.com/foo', '530d903a'],
    ]);
    expect(opened.unverified).toEqual([]);
    expect(openNote(Buffer.from(note), [noteVerifier(vkey)]).text).toBe(opened.text);
  });

  it('signs byte-identically to the Go sumdb/note vector and derives its verifier key', () => {
    const { skey, text, signatureLine } = signing.signedNoteSign;
    const note = signNote(text, [noteSigner(skey)]);
    expect(note).toBe(`${text}\n${signatureLine}`);
    // The vkey published beside the vector in golang/mod sumdb/note/note_test.go.
    expect(verifierKeyOf(skey)).toBe(
      'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW',
    );
    expect(openNote(note, [noteVerifier(verifierKeyOf(skey))]).text).toBe(text);
  });

  it('reproduces the derived Modelgate checkpoint signature and witness cosignature', () => {
    const logKey = generateSignerKey(
      'registry.example/audit',
      ED25519,
      seed('audit-log-test-seed'),
    );
    const witnessKey = generateSignerKey(
      'witness.example/w1',
      COSIGNATURE_V1,
      seed('audit-witness-test-seed'),
    );
    expect(verifierKeyOf(logKey)).toBe(LOG_VKEY);
    expect(verifierKeyOf(witnessKey)).toBe(WITNESS_VKEY);
    const witness = noteSigner(witnessKey, { now: () => 1767225600 });
    expect(signNote(CHECKPOINT, [noteSigner(logKey), witness])).toBe(
      `${CHECKPOINT}\n${LOG_LINE}${WITNESS_LINE}`,
    );
    const opened = openNote(`${CHECKPOINT}\n${LOG_LINE}${WITNESS_LINE}`, [
      noteVerifier(LOG_VKEY),
      noteVerifier(WITNESS_VKEY),
    ]);
    expect(opened.verified.map((s) => s.name)).toEqual([
      'registry.example/audit',
      'witness.example/w1',
    ]);
    expect(cosignatureTimestamp(opened.verified[1]!.signature)).toBe(1767225600);
  });

  it('computes key IDs over name, newline, type and public key', () => {
    const pub = Buffer.from('AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k', 'base64').subarray(1);
    expect(keyId('example.com/foo', ED25519, pub).toString(16)).toBe('530d903a');
    expect(keyId('example.com/foo', COSIGNATURE_V1, pub)).not.toBe(0x530d903a);
  });

  it('ignores signatures by unknown keys but needs one by a known key', () => {
    const a = generateSignerKey('a.example');
    const b = generateSignerKey('b.example');
    const note = signNote('hello\n\nworld\n', [noteSigner(a), noteSigner(b)]);
    const opened = openNote(note, [noteVerifier(verifierKeyOf(b))]);
    expect(opened.text).toBe('hello\n\nworld\n');
    expect(opened.verified.map((s) => s.name)).toEqual(['b.example']);
    expect(opened.unverified.map((s) => s.name)).toEqual(['a.example']);
    expect(
      catchCode(() =>
        openNote(note, [noteVerifier(verifierKeyOf(generateSignerKey('c.example')))]),
      ),
    ).toBe('UNVERIFIED_NOTE');
    expect(catchCode(() => openNote(note, []))).toBe('UNVERIFIED_NOTE');
    // A key with the same name but another key ID is a different, unknown key.
    const other = generateSignerKey('b.example');
    expect(catchCode(() => openNote(note, [noteVerifier(verifierKeyOf(other))]))).toBe(
      'UNVERIFIED_NOTE',
    );
    // Repeated lines count once.
    const [, line] = note.split('\n\n\u2014');
    const doubled = `${note}\u2014${line}`;
    const again = openNote(doubled, [noteVerifier(verifierKeyOf(b))]);
    expect(again.verified).toHaveLength(1);
    expect(again.unverified).toHaveLength(1);
  });

  it('rejects a note whose known signature does not verify', () => {
    const key = generateSignerKey('log.example');
    const verifier = noteVerifier(verifierKeyOf(key));
    const note = signNote('size 1\n', [noteSigner(key)]);
    expect(catchCode(() => openNote(note.replace('size 1', 'size 2'), [verifier]))).toBe(
      'INVALID_SIGNATURE',
    );
    // A valid signature by another known key does not rescue it.
    const good = generateSignerKey('good.example');
    const mixed = `${signNote('size 2\n', [noteSigner(good)])}${note.split('\n\n')[1]}`;
    expect(catchCode(() => openNote(mixed, [verifier, noteVerifier(verifierKeyOf(good))]))).toBe(
      'INVALID_SIGNATURE',
    );
    expect(catchCode(() => openNote(note, [verifier, verifier]))).toBe('INVALID_KEY');
  });

  it('refuses malformed notes', () => {
    const key = generateSignerKey('k.example');
    const ok = signNote('text\n', [noteSigner(key)]);
    const sig = ok.split('\u2014 k.example ')[1]!.trimEnd();
    const malformed = [
      '',
      '\n',
      'text\n',
      'text\n\n',
      'text\n\n\n',
      `text\n\n\u2014 k.example ${sig}`,
      `text\n\n\u2014 k.example ${sig}\n\n`,
      `text\n\n- k.example ${sig}\n`,
      `text\n\n\u2014  k.example ${sig}\n`,
      `text\n\n\u2014 k.example\n`,
      `text\n\n\u2014 k.example \n`,
      `text\n\n\u2014 k+example ${sig}\n`,
      `text\n\n\u2014 k.example ${sig.slice(0, -1)}\n`,
      `text\n\n\u2014 k.example ${sig} \n`,
      `text\n\n\u2014 k.example AAAAAA==\n`,
      `te\rxt\n\n\u2014 k.example ${sig}\n`,
      `te\u0000xt\n\n\u2014 k.example ${sig}\n`,
      `te\ud800xt\n\n\u2014 k.example ${sig}\n`,
      `text\n\n\u2014 k.example ${sig}\n${`\u2014 other ${sig}\n`.repeat(100)}`,
    ];
    for (const note of malformed) {
      expect(
        catchCode(() => openNote(note, [noteVerifier(verifierKeyOf(key))])),
        JSON.stringify(note),
      ).toBe('MALFORMED_NOTE');
    }
    expect(catchCode(() => parseNote(Buffer.from([0x61, 0xff, 0x0a, 0x0a])))).toBe(
      'MALFORMED_NOTE',
    );
    // 100 signatures are still accepted.
    const many = `${ok}${`\u2014 other ${sig}\n`.repeat(99)}`;
    expect(openNote(many, [noteVerifier(verifierKeyOf(key))]).unverified).toHaveLength(1);
    expect(parseNote(many).signatures).toHaveLength(100);
  });

  it('refuses to sign malformed text or under invalid names', () => {
    const signer = noteSigner(generateSignerKey('k.example'));
    expect(catchCode(() => signNote('no newline', [signer]))).toBe('MALFORMED_NOTE');
    expect(catchCode(() => signNote('tab\there\n', [signer]))).toBe('MALFORMED_NOTE');
    expect(catchCode(() => signNote('ok\n', [{ ...signer, name: 'bad name' }]))).toBe(
      'INVALID_KEY',
    );
    for (const name of ['', 'a+b', 'a b', 'a\u00a0b', 'a\u2003b', 'a\u0085b', 'a\tb']) {
      expect(isValidKeyName(name), JSON.stringify(name)).toBe(false);
    }
    expect(isValidKeyName('example.com/log-1_ü')).toBe(true);
  });

  it('refuses malformed or mismatched keys', () => {
    const { skey } = signing.signedNoteSign;
    const vkey = verifierKeyOf(skey);
    const bad = [
      () => noteSigner(skey.replace('PRIVATE+KEY', 'PRIVATE+KYE')),
      () => noteSigner(skey.replace('c74f20a3', 'c74f20a4')),
      () => noteSigner(skey.replace('c74f20a3', 'C74F20A3')),
      () => noteSigner(skey.replace('PeterNeumann', 'Peter+Neumann')),
      () => noteSigner(skey.slice(0, -4)),
      () => noteVerifier(vkey.replace('PeterNeumann', 'PeterNeuman')),
      () => noteVerifier(vkey.replace('+ARpc', '+Apc')),
      () => noteVerifier(`PeterNeumann+c74f20a3`),
      () => noteVerifier(`${vkey}=`),
      () => generateSignerKey('x', 0x02),
      () => generateSignerKey('x y'),
      () => generateSignerKey('x', ED25519, Buffer.alloc(31)),
    ];
    for (const f of bad) expect(catchCode(f)).toBe('INVALID_KEY');
    // Type 0x02 with a consistent key ID is still refused: only Ed25519 types are supported.
    const pub = publicKeyOf(vkey);
    const ecdsaLike = `PeterNeumann+${keyId('PeterNeumann', 0x02, pub).toString(16).padStart(8, '0')}+${Buffer.concat([Buffer.from([2]), pub]).toString('base64')}`;
    expect(catchCode(() => noteVerifier(ecdsaLike))).toBe('INVALID_KEY');
  });
});

describe('checkpoint cosignature (C2SP tlog-cosignature v1)', () => {
  const witnessKey = generateSignerKey('witness.example/w2', COSIGNATURE_V1);
  const verifier = noteVerifier(verifierKeyOf(witnessKey));
  const body = 'log.example/audit\n42\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n';

  it('round-trips and signs the timestamped message', () => {
    const signer = noteSigner(witnessKey, { now: () => 1700000000 });
    const note = signNote(body, [signer]);
    const [sig] = openNote(note, [verifier]).verified;
    expect(sig!.signature).toHaveLength(72);
    expect(cosignatureTimestamp(sig!.signature)).toBe(1700000000);
    expect(cosignatureMessage(1700000000, body).toString()).toBe(
      `cosignature/v1\ntime 1700000000\n${body}`,
    );
    // The same public key as a plain Ed25519 (0x01) key has another key ID and does not count.
    const pub = publicKeyOf(verifierKeyOf(witnessKey));
    const id = keyId('witness.example/w2', ED25519, pub).toString(16).padStart(8, '0');
    const plain = `witness.example/w2+${id}+${Buffer.concat([Buffer.from([ED25519]), pub]).toString('base64')}`;
    expect(catchCode(() => openNote(note, [noteVerifier(plain)]))).toBe('UNVERIFIED_NOTE');
  });

  it('refuses a tampered body, timestamp or signature', () => {
    const note = signNote(body, [noteSigner(witnessKey, { now: () => 1700000000 })]);
    expect(catchCode(() => openNote(note.replace('\n42\n', '\n43\n'), [verifier]))).toBe(
      'INVALID_SIGNATURE',
    );
    const line = note.slice(body.length + 1);
    const cut = line.lastIndexOf(' ') + 1;
    const [prefix, b64] = [line.slice(0, cut), line.slice(cut, -1)];
    const bytes = Buffer.from(b64, 'base64');
    const later = Buffer.from(bytes);
    later.writeBigUInt64BE(1700000001n, 4);
    const short = bytes.subarray(0, 75);
    for (const forged of [later, short]) {
      const tampered = `${body}\n${prefix}${forged.toString('base64')}\n`;
      expect(catchCode(() => openNote(tampered, [verifier]))).toBe('INVALID_SIGNATURE');
    }
  });

  it('refuses to sign with a zero or non-integer timestamp', () => {
    for (const t of [0, -1, 1.5, Number.NaN]) {
      expect(catchCode(() => signNote(body, [noteSigner(witnessKey, { now: () => t })]))).toBe(
        'INVALID_KEY',
      );
    }
  });

  it('reads the key ID and timestamp of the spec example line', () => {
    const line =
      '\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n';
    const [sig] = parseNote(`${body}\n${line}`).signatures;
    expect(sig!.keyId.toString(16)).toBe('8d66cf3f');
    expect(cosignatureTimestamp(sig!.signature)).toBe(1679315147);
    expect(cosignatureTimestamp(sig!.signature.subarray(1))).toBeUndefined();
  });
});
