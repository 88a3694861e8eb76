import { closeSync, openSync, readSync } from 'node:fs';

/** Thrown when input ends in the middle of a structure. */
export class TruncatedError extends Error {
  constructor(what: string) {
    super(`input ends inside ${what}`);
    this.name = 'TruncatedError';
  }
}

/** Sequential reads over bytes held in memory or streamed from a file in a bounded window. */
export interface ByteReader {
  /** Offset of the next byte. */
  readonly pos: number;
  /** Total length. */
  readonly size: number;
  u8(): number;
  /** The next byte, without consuming it. */
  peek(): number;
  /** Reads `n` bytes (n must be small enough to hold in memory). */
  take(n: number): Buffer;
  skip(n: number): void;
  /** Bytes up to (not including) the next `\n`, consuming it; at most `max` bytes. */
  line(max: number): Buffer;
  eof(): boolean;
}

/** A reader over a buffer. */
export class BufferReader implements ByteReader {
  pos = 0;
  readonly size: number;

  constructor(private readonly buf: Buffer) {
    this.size = buf.length;
  }

  u8(): number {
    if (this.pos >= this.size) throw new TruncatedError('an opcode');
    return this.buf[this.pos++] ?? 0;
  }

  peek(): number {
    if (this.pos >= this.size) throw new TruncatedError('an opcode');
    return this.buf[this.pos] ?? 0;
  }

  take(n: number): Buffer {
    if (this.pos + n > this.size) throw new TruncatedError(`a ${n}-byte argument`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  skip(n: number): void {
    if (this.pos + n > this.size) throw new TruncatedError(`a ${n}-byte argument`);
    this.pos += n;
  }

  line(max: number): Buffer {
    const end = this.buf.indexOf(0x0a, this.pos);
    if (end < 0 || end - this.pos > max) throw new TruncatedError('a text argument');
    const out = this.buf.subarray(this.pos, end);
    this.pos = end + 1;
    return out;
  }

  eof(): boolean {
    return this.pos >= this.size;
  }
}

const WINDOW = 1024 * 1024;

/** A reader over a file that keeps at most one window (1 MiB) plus the current argument in memory. */
export class FileReader implements ByteReader {
  pos = 0;
  readonly size: number;
  private win = Buffer.alloc(0);
  private winStart = 0;

  constructor(
    private readonly fd: number,
    size: number,
    private readonly start = 0,
  ) {
    this.size = size;
  }

  static open(path: string, size: number): FileReader {
    return new FileReader(openSync(path, 'r'), size);
  }

  close(): void {
    closeSync(this.fd);
  }

  private ensure(n: number): void {
    const off = this.pos - this.winStart;
    if (off >= 0 && off + n <= this.win.length) return;
    const want = Math.min(Math.max(n, WINDOW), this.size - this.pos);
    if (want < n) throw new TruncatedError(`a ${n}-byte argument`);
    const buf = Buffer.allocUnsafe(want);
    let got = 0;
    while (got < want) {
      const r = readSync(this.fd, buf, got, want - got, this.start + this.pos + got);
      if (r === 0) break;
      got += r;
    }
    this.win = buf.subarray(0, got);
    this.winStart = this.pos;
    if (got < n) throw new TruncatedError(`a ${n}-byte argument`);
  }

  u8(): number {
    const off = this.pos - this.winStart;
    // Fast path: the byte is in the window.
    if (off >= 0 && off < this.win.length) {
      this.pos++;
      return this.win[off] as number;
    }
    if (this.pos >= this.size) throw new TruncatedError('an opcode');
    this.ensure(1);
    return this.win[this.pos++ - this.winStart] ?? 0;
  }

  peek(): number {
    if (this.pos >= this.size) throw new TruncatedError('an opcode');
    this.ensure(1);
    return this.win[this.pos - this.winStart] ?? 0;
  }

  take(n: number): Buffer {
    this.ensure(n);
    const off = this.pos - this.winStart;
    this.pos += n;
    return this.win.subarray(off, off + n);
  }

  skip(n: number): void {
    if (this.pos + n > this.size) throw new TruncatedError(`a ${n}-byte argument`);
    this.pos += n;
  }

  line(max: number): Buffer {
    const parts: Buffer[] = [];
    let len = 0;
    for (;;) {
      if (this.pos >= this.size) throw new TruncatedError('a text argument');
      this.ensure(1);
      const off = this.pos - this.winStart;
      const nl = this.win.indexOf(0x0a, off);
      const end = nl < 0 ? this.win.length : nl;
      len += end - off;
      if (len > max) throw new TruncatedError('a text argument');
      parts.push(this.win.subarray(off, end));
      this.pos += end - off;
      if (nl >= 0) {
        this.pos += 1;
        return Buffer.concat(parts);
      }
    }
  }

  eof(): boolean {
    return this.pos >= this.size;
  }
}
