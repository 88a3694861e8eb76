import { closeSync, openSync, readSync } from 'node:fs';
import type { FormatIssue } from './format-issue.js';

/**
 * A reader of the protobuf wire format (tags, varints, length-delimited fields) with no schema
 * compiler: ONNX and TensorFlow files are walked field by field, and only the few fields the
 * scanner needs are read. Length-delimited payloads it does not need (tensor bytes) are skipped
 * without being read, so a multi-gigabyte model costs a few reads of its structure.
 */

/** The bytes are not valid protobuf, or not the message the caller expected. */
export class ProtoError extends Error {}

/** A walk stopped at one of the scanner's limits (node count, nesting depth). */
export class WalkLimitError extends Error {}

/**
 * The finding a walk that stopped early leaves behind: `<prefix>.limit` for a limit,
 * `<prefix>.unparseable` for malformed bytes. Anything else is a bug and is thrown again.
 */
export function stoppedWalk(e: unknown, prefix: string, malformedTitle: string): FormatIssue {
  if (e instanceof WalkLimitError)
    return {
      ruleId: `${prefix}.limit`,
      severity: 'medium',
      title: `The file exceeds a scanner limit (${e.message}); the rest was not checked`,
      detail: e.message,
    };
  if (e instanceof ProtoError)
    return {
      ruleId: `${prefix}.unparseable`,
      severity: 'medium',
      title: malformedTitle,
      detail: e.message,
    };
  throw e;
}

/** Random access to the bytes being walked. */
export interface ByteSource {
  readonly size: number;
  /**
   * Up to `len` bytes at `pos` (fewer at the end of the source). The bytes returned are never
   * changed afterwards, so callers may keep them.
   */
  read(pos: number, len: number): Buffer;
}

export class BufferSource implements ByteSource {
  constructor(private readonly buf: Buffer) {}
  get size(): number {
    return this.buf.length;
  }
  read(pos: number, len: number): Buffer {
    return this.buf.subarray(pos, Math.min(this.buf.length, pos + len));
  }
}

const WINDOW = 64 * 1024;

/** Reads a file through one cached window, so walking many small fields costs few syscalls. */
export class FileSource implements ByteSource {
  private readonly fd: number;
  private window: Buffer = Buffer.alloc(0);
  private windowPos = 0;

  constructor(
    path: string,
    readonly size: number,
  ) {
    this.fd = openSync(path, 'r');
  }

  read(pos: number, len: number): Buffer {
    const end = Math.min(this.size, pos + len);
    if (end <= pos) return Buffer.alloc(0);
    if (pos >= this.windowPos && end <= this.windowPos + this.window.length)
      return this.window.subarray(pos - this.windowPos, end - this.windowPos);
    const b = this.readFresh(pos, Math.max(WINDOW, end - pos));
    // Small reads go through the window; a large one (a whole archive member) is not kept.
    if (b.length <= WINDOW) {
      this.window = b;
      this.windowPos = pos;
    }
    return b.subarray(0, end - pos);
  }

  private readFresh(pos: number, len: number): Buffer {
    const b = Buffer.allocUnsafe(Math.min(len, this.size - pos));
    let got = 0;
    while (got < b.length) {
      const n = readSync(this.fd, b, got, b.length - got, pos + got);
      if (n === 0) break;
      got += n;
    }
    return b.subarray(0, got);
  }

  close(): void {
    closeSync(this.fd);
  }
}

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** One field of a message. For LEN fields, `start`..`end` is the payload. */
export interface Field {
  no: number;
  wire: number;
  /**
   * The value of a varint (read as int64, so huge values come out negative) or fixed-width
   * field, precise up to 2^53; for LEN fields the payload length.
   */
  value: number;
  start: number;
  end: number;
}

function varint(src: ByteSource, pos: number, end: number): [value: number, next: number] {
  const b = src.read(pos, Math.min(10, end - pos));
  let value = 0;
  let scale = 1;
  for (let i = 0; i < b.length; i++) {
    const byte = b[i] as number;
    if (i === 7) return bigVarint(b, pos);
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, pos + i + 1];
    scale *= 128;
  }
  throw new ProtoError(`varint cut off at ${pos}`);
}

/** Varints of 8 bytes or more, where doubles lose the low bits; int64 is read as signed. */
function bigVarint(b: Buffer, pos: number): [value: number, next: number] {
  let value = 0n;
  for (let i = 0; i < b.length; i++) {
    const byte = b[i] as number;
    value |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if (byte < 0x80) {
      value &= (1n << 64n) - 1n;
      return [Number(BigInt.asIntN(64, value)), pos + i + 1];
    }
  }
  throw new ProtoError(
    b.length === 10 ? `varint longer than 10 bytes at ${pos}` : `varint cut off at ${pos}`,
  );
}

/**
 * The fields of the message in `start`..`end`, in order. Throws ProtoError on a malformed tag,
 * a length past the end, or a wire type the format no longer uses (groups).
 */
export function* fields(src: ByteSource, start = 0, end = src.size): Generator<Field> {
  let pos = start;
  while (pos < end) {
    const [tag, afterTag] = varint(src, pos, end);
    const no = Math.floor(tag / 8);
    const wire = tag % 8;
    if (no <= 0 || no >= 2 ** 29) throw new ProtoError(`invalid field number at ${pos}`);
    switch (wire) {
      case WIRE_VARINT: {
        const [value, next] = varint(src, afterTag, end);
        yield { no, wire, value, start: afterTag, end: next };
        pos = next;
        break;
      }
      case WIRE_I64:
      case WIRE_I32: {
        const width = wire === WIRE_I64 ? 8 : 4;
        if (afterTag + width > end) throw new ProtoError(`fixed-width field cut off at ${pos}`);
        const b = src.read(afterTag, width);
        const value = width === 8 ? Number(b.readBigUInt64LE(0)) : b.readUInt32LE(0);
        yield { no, wire, value, start: afterTag, end: afterTag + width };
        pos = afterTag + width;
        break;
      }
      case WIRE_LEN: {
        const [len, payload] = varint(src, afterTag, end);
        if (len < 0 || payload + len > end)
          throw new ProtoError(
            `field ${no} at ${pos} is ${len} bytes long, past the end of its message`,
          );
        yield { no, wire, value: len, start: payload, end: payload + len };
        pos = payload + len;
        break;
      }
      default:
        throw new ProtoError(`unsupported wire type ${wire} for field ${no} at ${pos}`);
    }
  }
}

/** The UTF-8 text of a LEN field, cut to `max` bytes. */
export function text(src: ByteSource, f: Field, max = 4096): string {
  if (f.wire !== WIRE_LEN) throw new ProtoError(`field ${f.no} at ${f.start} is not a string`);
  return src.read(f.start, Math.min(max, f.end - f.start)).toString('utf8');
}

/** The integers of a repeated int field, packed or not; at most `max` of them. */
export function ints(src: ByteSource, f: Field, max = 64): number[] {
  if (f.wire === WIRE_VARINT) return [f.value];
  if (f.wire !== WIRE_LEN) throw new ProtoError(`field ${f.no} at ${f.start} is not an integer`);
  const out: number[] = [];
  let pos = f.start;
  while (pos < f.end && out.length < max) {
    const [v, next] = varint(src, pos, f.end);
    out.push(v);
    pos = next;
  }
  return out;
}
