import { closeSync, openSync, readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';

/** One member of a zip archive as its headers describe it. */
export interface ZipMember {
  /** Name in the central directory (or the local header when there is no directory). */
  name: string;
  /** Name in the local header, when it differs from the central directory's. */
  localName: string | undefined;
  method: number;
  compressedSize: number;
  size: number;
  /** Offset of the member's data in the file. */
  dataOffset: number;
  flags: number;
}

/** A zip archive read the lenient way PyTorch reads one: CRCs and flag bits are ignored. */
export interface ZipListing {
  members: ZipMember[];
  /** Problems with the container itself. */
  problems: string[];
}

const EOCD = 0x06054b50;
const CDH = 0x02014b50;
const LFH = 0x04034b50;
const MAX_MEMBERS = 100_000;

function readAt(fd: number, pos: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    const r = readSync(fd, b, got, n - got, pos + got);
    if (r === 0) break;
    got += r;
  }
  return b.subarray(0, got);
}

/** True when the file starts like a zip archive. */
export function isZip(head: Buffer): boolean {
  return head.length >= 4 && head.readUInt32LE(0) === LFH;
}

/**
 * Lists a zip's members from its central directory, taking each member's data offset from
 * its local header (as extractors do), and falls back to walking local headers when the
 * directory is missing or broken. Names that differ between the two are reported.
 */
export function listZip(path: string, size: number): ZipListing {
  const fd = openSync(path, 'r');
  try {
    const problems: string[] = [];
    const tailLen = Math.min(size, 65_557);
    const tail = readAt(fd, size - tailLen, tailLen);
    let eocd = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD) {
        eocd = i;
        break;
      }
    }
    const members: ZipMember[] = [];
    if (eocd >= 0) {
      const count = tail.readUInt16LE(eocd + 10);
      const cdSize = tail.readUInt32LE(eocd + 12);
      const cdOffset = tail.readUInt32LE(eocd + 16);
      if (cdOffset === 0xffffffff || count === 0xffff)
        problems.push('zip64 archive: only the first 4 GiB are listed');
      if (cdOffset + cdSize <= size && count <= MAX_MEMBERS) {
        const cd = readAt(fd, cdOffset, cdSize);
        let p = 0;
        while (p + 46 <= cd.length && cd.readUInt32LE(p) === CDH && members.length < MAX_MEMBERS) {
          const flags = cd.readUInt16LE(p + 8);
          const method = cd.readUInt16LE(p + 10);
          const compressedSize = cd.readUInt32LE(p + 20);
          const usize = cd.readUInt32LE(p + 24);
          const nameLen = cd.readUInt16LE(p + 28);
          const extraLen = cd.readUInt16LE(p + 30);
          const commentLen = cd.readUInt16LE(p + 32);
          const localOffset = cd.readUInt32LE(p + 42);
          const name = cd.subarray(p + 46, p + 46 + nameLen).toString('utf8');
          p += 46 + nameLen + extraLen + commentLen;
          const lh = readAt(fd, localOffset, 30);
          if (lh.length < 30 || lh.readUInt32LE(0) !== LFH) {
            problems.push(`member ${name}: no local header at offset ${localOffset}`);
            continue;
          }
          const lNameLen = lh.readUInt16LE(26);
          const lExtraLen = lh.readUInt16LE(28);
          const localName = readAt(fd, localOffset + 30, lNameLen).toString('utf8');
          members.push({
            name,
            localName: localName !== name ? localName : undefined,
            method,
            compressedSize,
            size: usize,
            dataOffset: localOffset + 30 + lNameLen + lExtraLen,
            flags,
          });
        }
      } else problems.push('central directory points outside the file');
    } else problems.push('no end-of-central-directory record');
    if (members.length === 0) {
      // No usable directory: walk local headers from the start, as a streaming reader would.
      let pos = 0;
      while (pos + 30 <= size && members.length < MAX_MEMBERS) {
        const lh = readAt(fd, pos, 30);
        if (lh.readUInt32LE(0) !== LFH) break;
        const flags = lh.readUInt16LE(6);
        const method = lh.readUInt16LE(8);
        const compressedSize = lh.readUInt32LE(18);
        const usize = lh.readUInt32LE(22);
        const nameLen = lh.readUInt16LE(26);
        const extraLen = lh.readUInt16LE(28);
        const name = readAt(fd, pos + 30, nameLen).toString('utf8');
        const dataOffset = pos + 30 + nameLen + extraLen;
        members.push({
          name,
          localName: undefined,
          method,
          compressedSize,
          size: usize,
          dataOffset,
          flags,
        });
        if (flags & 0x08 && compressedSize === 0) {
          problems.push(`member ${name}: size only in a data descriptor; later members not listed`);
          break;
        }
        pos = dataOffset + compressedSize;
      }
    }
    return { members, problems };
  } finally {
    closeSync(fd);
  }
}

/** Thrown when a member would inflate past the allowed size. */
export class InflateLimitError extends Error {}

/**
 * Reads a member's bytes (inflating a deflated one), at most `limit` bytes of output.
 * With `prefixOnly`, returns only the first bytes, enough to recognise the content.
 */
export function readMember(path: string, m: ZipMember, limit: number, prefixOnly = false): Buffer {
  const fd = openSync(path, 'r');
  try {
    if (m.method === 0) {
      const n = prefixOnly ? Math.min(m.compressedSize, 64) : m.compressedSize;
      if (n > limit)
        throw new InflateLimitError(`member ${m.name} is ${n} bytes, over the ${limit}-byte limit`);
      return readAt(fd, m.dataOffset, n);
    }
    if (m.method !== 8)
      throw new Error(`member ${m.name}: compression method ${m.method} is not supported`);
    const inLen = prefixOnly ? Math.min(m.compressedSize, 4096) : m.compressedSize;
    if (inLen > limit)
      throw new InflateLimitError(
        `member ${m.name} is ${inLen} compressed bytes, over the ${limit}-byte limit`,
      );
    const raw = readAt(fd, m.dataOffset, inLen);
    // Z_SYNC_FLUSH: a truncated or prefix-only stream yields what it has instead of failing.
    if (prefixOnly) {
      // 4 KiB of deflate input expands to at most about 4 MiB, so no output limit is needed.
      return inflateRawSync(raw, { finishFlush: 2 }).subarray(0, 64);
    }
    try {
      return inflateRawSync(raw, { maxOutputLength: limit, finishFlush: 2 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new InflateLimitError(
          `member ${m.name} inflates past the ${limit}-byte limit (a zip bomb?)`,
        );
      }
      throw e;
    }
  } finally {
    closeSync(fd);
  }
}
