import { createHash } from 'node:crypto';
import { ModelgateError } from './errors.js';

/** One file of a version as it enters the manifest: relative path, size and SHA-256 (hex). */
export interface ManifestFile {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

/** The OpenSSF model-signing (v1.0) predicate body for a version, serialisation `files`. */
export interface ModelSigningManifest {
  readonly subject: { readonly name: string; readonly digest: { readonly sha256: string } };
  readonly predicateType: 'https://model_signing/signature/v1.0';
  readonly predicate: {
    readonly serialization: {
      readonly method: 'files';
      readonly hash_type: 'sha256';
      readonly allow_symlinks: false;
    };
    readonly resources: readonly { name: string; algorithm: 'sha256'; digest: string }[];
  };
}

const HEX64 = /^[0-9a-f]{64}$/;
export const DIGEST_PATTERN = '^sha256:[0-9a-f]{64}$';
const DIGEST_RE = new RegExp(DIGEST_PATTERN);

/** Throws INVALID_DIGEST unless `d` is `sha256:<64 lowercase hex>`; returns the hex part. */
export function parseDigest(d: string): string {
  if (!DIGEST_RE.test(d)) {
    throw new ModelgateError(
      'INVALID_DIGEST',
      `invalid digest ${JSON.stringify(d)}: expected sha256: and 64 lowercase hex digits`,
      { digest: d },
    );
  }
  return d.slice(7);
}

function codePoints(s: string): number[] {
  return Array.from(s, (c) => c.codePointAt(0) ?? 0);
}

function compareCodePoints(a: string, b: string): number {
  const x = codePoints(a);
  const y = codePoints(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/**
 * Orders paths the way Python's `PurePosixPath` does, component by component and each
 * component by code point, which is the order the model-signing digest is defined in.
 * (`a/b` sorts before `a-b` here, although plain string order says the opposite.)
 */
export function comparePosixPaths(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  const n = Math.min(pa.length, pb.length);
  for (let i = 0; i < n; i++) {
    const d = compareCodePoints(pa[i] ?? '', pb[i] ?? '');
    if (d !== 0) return d;
  }
  return pa.length - pb.length;
}

/**
 * The version digest: SHA-256 over the concatenation of the raw 32-byte file digests in
 * PurePosixPath order of their paths, as the OpenSSF model-signing v1.0 subject digest is.
 */
export function versionDigest(files: readonly ManifestFile[]): string {
  const sorted = [...files].sort((a, b) => comparePosixPaths(a.path, b.path));
  const h = createHash('sha256');
  for (const f of sorted) {
    if (!HEX64.test(f.sha256)) throw new Error(`not a sha256 hex digest: ${f.sha256}`);
    h.update(Buffer.from(f.sha256, 'hex'));
  }
  return `sha256:${h.digest('hex')}`;
}

/**
 * The layout digest: SHA-256 of the version's manifest as `sha256sum` prints it, one line
 * `<hex digest>  <path>\n` per file in PurePosixPath order. Unlike the version digest it binds
 * every path to its bytes, so two versions with the same bytes under other names differ.
 * (Paths hold no newline or backslash, so the lines are exactly sha256sum's.)
 */
export function layoutDigest(files: readonly ManifestFile[]): string {
  const sorted = [...files].sort((a, b) => comparePosixPaths(a.path, b.path));
  const h = createHash('sha256');
  for (const f of sorted) {
    if (!HEX64.test(f.sha256)) throw new Error(`not a sha256 hex digest: ${f.sha256}`);
    h.update(`${f.sha256}  ${f.path}\n`, 'utf8');
  }
  return `sha256:${h.digest('hex')}`;
}

/** Builds the model-signing manifest (the in-toto statement body) for a version. */
export function modelSigningManifest(
  name: string,
  files: readonly ManifestFile[],
): ModelSigningManifest {
  const sorted = [...files].sort((a, b) => comparePosixPaths(a.path, b.path));
  return {
    subject: { name, digest: { sha256: versionDigest(sorted).slice(7) } },
    predicateType: 'https://model_signing/signature/v1.0',
    predicate: {
      serialization: { method: 'files', hash_type: 'sha256', allow_symlinks: false },
      resources: sorted.map((f) => ({ name: f.path, algorithm: 'sha256', digest: f.sha256 })),
    },
  };
}
