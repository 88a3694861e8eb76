import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { comparePosixPaths, modelSigningManifest, parseDigest, versionDigest } from './manifest.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('model-signing manifest digest', () => {
  it('orders paths component-wise like PurePosixPath, not as plain strings', () => {
    const paths = [
      'a-b',
      'a/b',
      'a/b/c',
      'a.txt',
      'a',
      'B',
      'a/a',
      'é',
      'z',
      '\u{1F600}',
      '\uFFFF',
    ];
    const sorted = [...paths].sort(comparePosixPaths);
    // Python: sorted(PurePosixPath(p) for p in paths)
    expect(sorted).toEqual([
      'B',
      'a',
      'a/a',
      'a/b',
      'a/b/c',
      'a-b',
      'a.txt',
      'z',
      'é',
      '\uFFFF',
      '\u{1F600}',
    ]);
  });

  it('hashes the concatenated raw file digests in that order', () => {
    const files = [
      { path: 'a-b', size: 1, sha256: sha('1') },
      { path: 'a/b', size: 1, sha256: sha('2') },
    ];
    const expected = createHash('sha256')
      .update(Buffer.from(sha('2'), 'hex'))
      .update(Buffer.from(sha('1'), 'hex'))
      .digest('hex');
    expect(versionDigest(files)).toBe(`sha256:${expected}`);
    expect(versionDigest([...files].reverse())).toBe(`sha256:${expected}`);
    const m = modelSigningManifest('m@1', files);
    expect(m.subject.digest.sha256).toBe(expected);
    expect(m.predicate.resources.map((r) => r.name)).toEqual(['a/b', 'a-b']);
    expect(m.predicate.serialization).toEqual({
      method: 'files',
      hash_type: 'sha256',
      allow_symlinks: false,
    });
  });

  it('is the digest of the empty string for a version without files, and refuses bad digests', () => {
    expect(versionDigest([])).toBe(`sha256:${sha('')}`);
    expect(() => versionDigest([{ path: 'x', size: 0, sha256: 'XYZ' }])).toThrow();
    expect(parseDigest(`sha256:${'a'.repeat(64)}`)).toBe('a'.repeat(64));
    for (const bad of [
      'sha256:',
      `sha256:${'A'.repeat(64)}`,
      `sha512:${'a'.repeat(64)}`,
      `${'a'.repeat(64)}`,
    ]) {
      expect(() => parseDigest(bad)).toThrow(/invalid digest/);
    }
  });
});
