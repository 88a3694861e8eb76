import { inflateRawSync } from 'node:zlib';
import type { ByteSource } from './protobuf-wire.js';

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
const EOCD64 = 0x06064b50;
const EOCD64_LOCATOR = 0x07064b50;
const ZIP64_EXTRA = 0x0001;
const CDH = 0x02014b50;
const LFH = 0x04034b50;
const MAX_MEMBERS = 100_000;

const u64 = (b: Buffer, at: number) => Number(b.readBigUInt64LE(at));

/**
 * Values a central-directory entry marks 0xFFFFFFFF live in its zip64 extra field, in this
 * order: size, compressed size, local header offset.
 */
function zip64Values(
  extra: Buffer,
  wanted: { size: boolean; compressed: boolean; offset: boolean },
): { size?: number; compressed?: number; offset?: number } {
  let p = 0;
  while (p + 4 <= extra.length) {
    const id = extra.readUInt16LE(p);
    const len = extra.readUInt16LE(p + 2);
    if (id === ZIP64_EXTRA) {
      const body = extra.subarray(p + 4, p + 4 + len);
      const out: { size?: number; compressed?: number; offset?: number } = {};
      let q = 0;
      for (const key of ['size', 'compressed', 'offset'] as const) {
        if (!wanted[key]) continue;
        if (q + 8 > body.length) break;
        out[key] = u64(body, q);
        q += 8;
      }
      return out;
    }
    p += 4 + len;
  }
  return {};
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
export function listZip(src: ByteSource): ZipListing {
  const size = src.size;
  const readAt = (pos: number, n: number) => src.read(pos, n);
  const problems: string[] = [];
  const tailLen = Math.min(size, 65_557);
  const tail = readAt(size - tailLen, tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD) {
      eocd = i;
      break;
    }
  }
  const members: ZipMember[] = [];
  if (eocd >= 0) {
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    if (cdOffset === 0xffffffff || cdSize === 0xffffffff || count === 0xffff) {
      // Zip64: a locator just before the record points at the 64-bit end record.
      const locAt = size - tailLen + eocd - 20;
      const loc = locAt >= 0 ? readAt(locAt, 20) : Buffer.alloc(0);
      const rec =
        loc.length === 20 && loc.readUInt32LE(0) === EOCD64_LOCATOR
          ? readAt(u64(loc, 8), 56)
          : Buffer.alloc(0);
      if (rec.length === 56 && rec.readUInt32LE(0) === EOCD64) {
        count = u64(rec, 32);
        cdSize = u64(rec, 40);
        cdOffset = u64(rec, 48);
      } else problems.push('zip64 end record missing or broken');
    }
    if (count > MAX_MEMBERS) problems.push(`more than ${MAX_MEMBERS} members: not listed`);
    else if (cdOffset + cdSize <= size) {
      const cd = readAt(cdOffset, cdSize);
      let p = 0;
      while (p + 46 <= cd.length && cd.readUInt32LE(p) === CDH && members.length < MAX_MEMBERS) {
        const flags = cd.readUInt16LE(p + 8);
        const method = cd.readUInt16LE(p + 10);
        let compressedSize = cd.readUInt32LE(p + 20);
        let usize = cd.readUInt32LE(p + 24);
        const nameLen = cd.readUInt16LE(p + 28);
        const extraLen = cd.readUInt16LE(p + 30);
        const commentLen = cd.readUInt16LE(p + 32);
        let localOffset = cd.readUInt32LE(p + 42);
        const name = cd.subarray(p + 46, p + 46 + nameLen).toString('utf8');
        const extra = cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen);
        p += 46 + nameLen + extraLen + commentLen;
        if (usize === 0xffffffff || compressedSize === 0xffffffff || localOffset === 0xffffffff) {
          const z = zip64Values(extra, {
            size: usize === 0xffffffff,
            compressed: compressedSize === 0xffffffff,
            offset: localOffset === 0xffffffff,
          });
          usize = z.size ?? usize;
          compressedSize = z.compressed ?? compressedSize;
          localOffset = z.offset ?? localOffset;
        }
        const lh = readAt(localOffset, 30);
        if (lh.length < 30 || lh.readUInt32LE(0) !== LFH) {
          problems.push(`member ${name}: no local header at offset ${localOffset}`);
          continue;
        }
        const lNameLen = lh.readUInt16LE(26);
        const lExtraLen = lh.readUInt16LE(28);
        const localName = readAt(localOffset + 30, lNameLen).toString('utf8');
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
      const lh = readAt(pos, 30);
      if (lh.readUInt32LE(0) !== LFH) break;
      const flags = lh.readUInt16LE(6);
      const method = lh.readUInt16LE(8);
      let compressedSize = lh.readUInt32LE(18);
      let usize = lh.readUInt32LE(22);
      const nameLen = lh.readUInt16LE(26);
      const extraLen = lh.readUInt16LE(28);
      const name = readAt(pos + 30, nameLen).toString('utf8');
      if (usize === 0xffffffff || compressedSize === 0xffffffff) {
        // In a local header the zip64 extra holds both sizes whenever either overflows.
        const z = zip64Values(readAt(pos + 30 + nameLen, extraLen), {
          size: true,
          compressed: true,
          offset: false,
        });
        usize = z.size ?? usize;
        compressedSize = z.compressed ?? compressedSize;
      }
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
}

/** Thrown when a member would inflate past the allowed size. */
export class InflateLimitError extends Error {}

/**
 * Reads a member's bytes (inflating a deflated one), at most `limit` bytes of output.
 * With `prefixOnly`, returns only the first bytes, enough to recognise the content.
 */
export function readMember(
  src: ByteSource,
  m: ZipMember,
  limit: number,
  prefixOnly = false,
): Buffer {
  const readAt = (pos: number, n: number) => src.read(pos, n);
  if (m.method === 0) {
    const n = prefixOnly ? Math.min(m.compressedSize, 64) : m.compressedSize;
    if (n > limit)
      throw new InflateLimitError(`member ${m.name} is ${n} bytes, over the ${limit}-byte limit`);
    return readAt(m.dataOffset, n);
  }
  if (m.method !== 8)
    throw new Error(`member ${m.name}: compression method ${m.method} is not supported`);
  const inLen = prefixOnly ? Math.min(m.compressedSize, 4096) : m.compressedSize;
  if (inLen > limit)
    throw new InflateLimitError(
      `member ${m.name} is ${inLen} compressed bytes, over the ${limit}-byte limit`,
    );
  const raw = readAt(m.dataOffset, inLen);
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
}
