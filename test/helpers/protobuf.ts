/** A minimal protobuf writer for building ONNX and TensorFlow test files by hand. */

export function varint(n: number | bigint): Buffer {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v ? b | 0x80 : b);
  } while (v);
  return Buffer.from(out);
}

/** A length-delimited field: a string, bytes or a nested message. */
export function len(no: number, payload: Buffer | string): Buffer {
  const b = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return Buffer.concat([varint((no << 3) | 2), varint(b.length), b]);
}

export function int(no: number, n: number | bigint): Buffer {
  return Buffer.concat([varint(no << 3), varint(n)]);
}

export const msg = (...parts: Buffer[]) => Buffer.concat(parts);
