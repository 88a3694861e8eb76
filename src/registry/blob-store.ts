import type { Readable } from 'node:stream';

/** What a finished upload stored. `created` is false when the blob was already there. */
export interface PutResult {
  digest: string;
  size: number;
  created: boolean;
}

/** Content-addressed storage of file bytes, keyed by `sha256:<hex>`. */
export interface BlobStore {
  /**
   * Streams `source` in, hashing as it goes; the blob becomes visible under its digest only
   * once complete. Refuses (PAYLOAD_TOO_LARGE) past `maxBytes`, and (BLOB_MISMATCH) when
   * `expectedDigest` is given and differs (a function is asked once the bytes are in, so a
   * digest sent as an HTTP trailer can be checked). Nothing is left behind on failure.
   */
  put(
    source: AsyncIterable<Buffer> | Readable,
    opts: { maxBytes: number; expectedDigest?: string | (() => string | undefined) },
  ): Promise<PutResult>;
  /** The stored size of a blob, or undefined when absent. */
  size(digest: string): Promise<number | undefined>;
  /** Reads a blob; with `verify`, the stream fails with BLOB_CORRUPT if the bytes do not hash to the digest. */
  read(digest: string, opts?: { verify?: boolean }): Promise<Readable>;
  /** Re-hashes a stored blob; true when it still matches its digest. */
  verify(digest: string): Promise<boolean>;
  /** A local file holding the blob's bytes, for tools that read files (evaluators). */
  localPath(digest: string): Promise<string>;
  /** Whether the store is usable (its folder exists and is writable). */
  ready(): Promise<boolean>;
}
