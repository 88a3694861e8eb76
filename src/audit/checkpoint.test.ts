import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Checkpoint,
  CheckpointError,
  formatCheckpoint,
  parseCheckpoint,
} from './checkpoint.js';
import { leafHash, MemoryTree, verifyConsistency, verifyInclusion } from './merkle.js';
import {
  ED25519,
  generateSignerKey,
  noteSigner,
  noteVerifier,
  openNote,
  signNote,
  verifierKeyOf,
} from './signed-note.js';

const ROOT_B64 = 'XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=';
const ROOT = Buffer.from(ROOT_B64, 'base64');

describe('checkpoint (C2SP tlog-checkpoint)', () => {
  it('formats and parses the body of a signed checkpoint note', () => {
    const text = formatCheckpoint({ origin: 'registry.example/audit', size: 8, root: ROOT });
    expect(text).toBe(`registry.example/audit\n8\n${ROOT_B64}\n`);
    expect(parseCheckpoint(text)).toEqual({
      origin: 'registry.example/audit',
      size: 8,
      root: ROOT,
      extensions: [],
    });
    // Reference §3: the 8-leaf checkpoint signed by the Modelgate test log key.
    const logKey = generateSignerKey(
      'registry.example/audit',
      ED25519,
      createHash('sha256').update('audit-log-test-seed').digest(),
    );
    const note = signNote(text, [noteSigner(logKey)]);
    expect(note).toBe(
      `${text}\n\u2014 registry.example/audit AD93gm0rGhyLqMKvCUuX4s+4BNePDaFCstKds59Xe3NaGCRvfp941/eYPC4H9WMMwNKHW8PZUkJ1tcDDldkvljBbQg0=\n`,
    );
    const opened = openNote(note, [
      noteVerifier('registry.example/audit+003f7782+AV2w7s3cs0lQiXAPKVicBzzMpYh650nS7hRg3OZOBYyV'),
    ]);
    expect(parseCheckpoint(opened.text).root).toEqual(ROOT);
  });

  it('keeps extension lines in order', () => {
    const checkpoint = {
      origin: 'o',
      size: 0,
      root: new MemoryTree().root(),
      extensions: ['ext one', 'ext two'],
    };
    const text = formatCheckpoint(checkpoint);
    expect(text).toBe(`o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next one\next two\n`);
    expect(parseCheckpoint(text)).toEqual(checkpoint);
  });

  it('round-trips any well-formed checkpoint (property)', () => {
    const line = fc
      .string({ minLength: 1, maxLength: 20 })
      // biome-ignore lint/suspicious/noControlCharactersInRegex: lines without control characters are the valid ones
      .filter((s) => !/[\u0000-\u001f]/.test(s));
    fc.assert(
      fc.property(
        line,
        fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.array(line, { maxLength: 3 }),
        (origin, size, root, extensions) => {
          const checkpoint: Checkpoint = { origin, size, root: Buffer.from(root), extensions };
          expect(parseCheckpoint(formatCheckpoint(checkpoint))).toEqual(checkpoint);
        },
      ),
    );
  });

  it('refuses malformed bodies with a clear error', () => {
    const cases: [string, RegExp][] = [
      [`o\n8\n${ROOT_B64}`, /end with a newline/],
      ['o\n8\n', /origin, size and root/],
      ['', /end with a newline/],
      [`\n8\n${ROOT_B64}\n`, /origin is empty/],
      [`o\r\n8\n${ROOT_B64}\n`, /control character/],
      [`o\n08\n${ROOT_B64}\n`, /leading zeros/],
      [`o\n-1\n${ROOT_B64}\n`, /not a decimal/],
      [`o\n+1\n${ROOT_B64}\n`, /not a decimal/],
      [`o\n 8\n${ROOT_B64}\n`, /not a decimal/],
      [`o\n0x8\n${ROOT_B64}\n`, /not a decimal/],
      [`o\n\n${ROOT_B64}\n`, /not a decimal/],
      [`o\n18446744073709551615\n${ROOT_B64}\n`, /exceeds 2\^53 - 1/],
      [`o\n8\n${ROOT_B64.slice(0, -1)}\n`, /not canonical base64/],
      [`o\n8\n${ROOT_B64.replace('+', '-')}\n`, /not canonical base64/],
      [`o\n8\n ${ROOT_B64}\n`, /not canonical base64/],
      [`o\n8\n${ROOT_B64.replace('yg=', 'yh=')}\n`, /not canonical base64/],
      // The transparency-dev/formats example root "bananas" is not a SHA-256 hash.
      ['Log\n123\nYmFuYW5hcw==\n', /7 bytes, not 32/],
      [`o\n8\n${ROOT_B64}\n\n`, /extension line is empty/],
      [`o\n8\n${ROOT_B64}\next\n\nmore\n`, /extension line is empty/],
      [`o\n8\n${ROOT_B64}\ne\u0007xt\n`, /control character/],
    ];
    for (const [text, message] of cases) {
      expect(() => parseCheckpoint(text), JSON.stringify(text)).toThrow(CheckpointError);
      expect(() => parseCheckpoint(text), JSON.stringify(text)).toThrow(message);
    }
  });

  it('refuses to format what it could not parse', () => {
    const bad: Checkpoint[] = [
      { origin: '', size: 1, root: ROOT },
      { origin: 'a\nb', size: 1, root: ROOT },
      { origin: 'o', size: -1, root: ROOT },
      { origin: 'o', size: 1.5, root: ROOT },
      { origin: 'o', size: 2 ** 53, root: ROOT },
      { origin: 'o', size: 1, root: ROOT.subarray(1) },
      { origin: 'o', size: 1, root: ROOT, extensions: [''] },
      { origin: 'o', size: 1, root: ROOT, extensions: ['a\nb'] },
    ];
    for (const checkpoint of bad)
      expect(() => formatCheckpoint(checkpoint)).toThrow(CheckpointError);
  });
});

describe('signed checkpoints over a growing log', () => {
  it('proves each signed checkpoint consistent with the next', () => {
    const key = generateSignerKey('log.example/audit');
    const verifier = noteVerifier(verifierKeyOf(key));
    const tree = new MemoryTree();
    let previous: Checkpoint | undefined;
    for (let batch = 1; batch <= 6; batch++) {
      for (let i = 0; i < batch * 3; i++) tree.append(Buffer.from(`event ${tree.size}`));
      const note = signNote(
        formatCheckpoint({ origin: 'log.example/audit', size: tree.size, root: tree.root() }),
        [noteSigner(key)],
      );
      const checkpoint = parseCheckpoint(openNote(note, [verifier]).text);
      if (previous) {
        const proof = tree.consistencyProof(previous.size, checkpoint.size);
        expect(
          verifyConsistency(previous.size, checkpoint.size, proof, previous.root, checkpoint.root),
        ).toBe(true);
      }
      const last = checkpoint.size - 1;
      expect(
        verifyInclusion(
          last,
          checkpoint.size,
          leafHash(Buffer.from(`event ${last}`)),
          tree.inclusionProof(last),
          checkpoint.root,
        ),
      ).toBe(true);
      previous = checkpoint;
    }
  });
});
