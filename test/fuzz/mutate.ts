import fc from 'fast-check';

/** One byte-level edit: flip, insert, delete, truncate or duplicate at a position. */
export type ByteEdit = ['flip' | 'insert' | 'delete' | 'truncate' | 'dup', number, number];

/** Arbitrary edit lists of 1 to `max` edits. */
export function byteEdits(max: number): fc.Arbitrary<ByteEdit[]> {
  return fc.array(
    fc.tuple(
      fc.constantFrom('flip', 'insert', 'delete', 'truncate', 'dup'),
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
    ) as fc.Arbitrary<ByteEdit>,
    { minLength: 1, maxLength: max },
  );
}

/** A seed with the edits applied: bytes flipped, inserted, cut or spliced. */
export function applyEdits(seed: Buffer, edits: ByteEdit[]): Buffer {
  let b = Buffer.from(seed);
  for (const [kind, pos, byte] of edits) {
    const at = b.length === 0 ? 0 : pos % b.length;
    if (kind === 'flip' && b.length > 0) b[at] = byte;
    else if (kind === 'insert')
      b = Buffer.concat([b.subarray(0, at), Buffer.from([byte]), b.subarray(at)]);
    else if (kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
    else if (kind === 'truncate') b = b.subarray(0, at);
    else if (kind === 'dup')
      b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 64), b.subarray(at)]);
  }
  return b;
}
