import { readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  appendedNodes,
  consistencyProof,
  emptyRoot,
  type HashReader,
  inclusionProof,
  leafHash,
  MemoryTree,
  nodeHash,
  ProofError,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from './merkle.js';

const VECTORS = new URL('../../test/vectors/', import.meta.url);
const b64 = (s: string) => Buffer.from(s, 'base64');
const hex = (s: string) => Buffer.from(s, 'hex');
const signing = JSON.parse(readFileSync(new URL('signing.json', VECTORS), 'utf8')) as {
  rfc6962: {
    emptyTreeRootHex: string;
    emptyLeafHashHex: string;
    standardLeavesHex: string[];
    rootOfAllEightStandardLeavesHex: string;
  };
};
const standardLeaves = signing.rfc6962.standardLeavesHex.map((h) => leafHash(hex(h)));

/** Every JSON probe under a vectors folder, with its path relative to that folder. */
function probes<T>(folder: string): [string, T][] {
  const root = fileURLToPath(new URL(folder, VECTORS));
  const out: [string, T][] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = `${dir}/${name}`;
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.json')) {
        out.push([path.slice(root.length), JSON.parse(readFileSync(path, 'utf8')) as T]);
      }
    }
  };
  walk(root.replace(/\/$/, ''));
  return out;
}

interface InclusionProbe {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

interface ConsistencyProbe {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

const inclusionProbes = probes<InclusionProbe>('rfc6962/inclusion/');
const consistencyProbes = probes<ConsistencyProbe>('rfc6962/consistency/');

/** MTH written as RFC 6962 §2.1 states it, as an independent check of the stored-subtree version. */
function naiveRoot(leaves: readonly Buffer[]): Buffer {
  if (leaves.length === 0) return emptyRoot();
  if (leaves.length === 1) return leaves[0]!;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(naiveRoot(leaves.slice(0, k)), naiveRoot(leaves.slice(k)));
}

function treeOf(n: number): { tree: MemoryTree; leaves: Buffer[] } {
  const tree = new MemoryTree();
  const leaves: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const data = Buffer.from(`leaf ${i}`);
    tree.append(data);
    leaves.push(leafHash(data));
  }
  return { tree, leaves };
}

function flipBit(proof: Buffer[], element: number, bit: number): Buffer[] {
  const copy = proof.map((p) => Buffer.from(p));
  copy[element]![bit >> 3]! ^= 1 << (bit & 7);
  return copy;
}

describe('RFC 6962 known answers', () => {
  it('hashes the empty tree, leaves and nodes as the reference does', () => {
    expect(emptyRoot().toString('hex')).toBe(signing.rfc6962.emptyTreeRootHex);
    expect(rootOf([]).toString('hex')).toBe(signing.rfc6962.emptyTreeRootHex);
    expect(leafHash(Buffer.alloc(0)).toString('hex')).toBe(signing.rfc6962.emptyLeafHashHex);
    // transparency-dev/merkle rfc6962_test.go
    expect(leafHash(Buffer.from('L123456')).toString('hex')).toBe(
      '395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56',
    );
    expect(nodeHash(Buffer.from('N123'), Buffer.from('N456')).toString('hex')).toBe(
      'aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb',
    );
  });

  it('gives the standard roots for the first n of the eight standard leaves', () => {
    // transparency-dev/merkle cmd/proofgen/main.go
    const roots = [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
      'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
      '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
      '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
      'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
      signing.rfc6962.rootOfAllEightStandardLeavesHex,
    ];
    const tree = new MemoryTree();
    for (const h of signing.rfc6962.standardLeavesHex) tree.append(hex(h));
    roots.forEach((root, i) => {
      expect(rootOf(standardLeaves.slice(0, i + 1)).toString('hex')).toBe(root);
      expect(tree.root(i + 1).toString('hex')).toBe(root);
    });
    expect(tree.root(0)).toEqual(emptyRoot());
  });
});

describe('transparency-dev/merkle probes', () => {
  it('has all 196 probe files', () => {
    expect(inclusionProbes.length + consistencyProbes.length).toBe(196);
  });

  it.each(inclusionProbes)('inclusion %s', (_, p) => {
    const ok = verifyInclusion(
      p.leafIdx,
      p.treeSize,
      b64(p.leafHash),
      (p.proof ?? []).map(b64),
      b64(p.root),
    );
    expect(ok).toBe(!p.wantErr);
  });

  it.each(consistencyProbes)('consistency %s', (_, p) => {
    const ok = verifyConsistency(
      p.size1,
      p.size2,
      (p.proof ?? []).map(b64),
      b64(p.root1),
      b64(p.root2),
    );
    expect(ok).toBe(!p.wantErr);
  });

  it('generates the same proofs as the happy-path probes over the standard leaves', () => {
    let compared = 0;
    for (const [, p] of inclusionProbes) {
      if (
        p.wantErr ||
        p.treeSize > 8 ||
        !b64(p.root).equals(rootOf(standardLeaves.slice(0, p.treeSize)))
      )
        continue;
      expect(inclusionProof(standardLeaves, p.leafIdx, p.treeSize)).toEqual(
        (p.proof ?? []).map(b64),
      );
      compared++;
    }
    for (const [, p] of consistencyProbes) {
      if (
        p.wantErr ||
        p.size2 > 8 ||
        !b64(p.root2).equals(rootOf(standardLeaves.slice(0, p.size2)))
      )
        continue;
      expect(consistencyProof(standardLeaves, p.size1, p.size2)).toEqual((p.proof ?? []).map(b64));
      compared++;
    }
    expect(compared).toBeGreaterThanOrEqual(10);
  });
});

describe('proof generation and verification', () => {
  it('verifies every inclusion and consistency proof of every tree up to 40 leaves', () => {
    const { tree, leaves } = treeOf(40);
    for (let n = 1; n <= 40; n++) {
      const root = tree.root(n);
      expect(root).toEqual(naiveRoot(leaves.slice(0, n)));
      for (let m = 0; m < n; m++) {
        const proof = tree.inclusionProof(m, n);
        expect(verifyInclusion(m, n, leaves[m]!, proof, root)).toBe(true);
        expect(proof).toEqual(inclusionProof(leaves.slice(0, n), m, n));
        expect(verifyInclusion(m, n, leaves[(m + 1) % n]!, proof, root)).toBe(n === 1);
      }
      for (let m = 1; m <= n; m++) {
        const proof = tree.consistencyProof(m, n);
        expect(verifyConsistency(m, n, proof, tree.root(m), root)).toBe(true);
        expect(proof).toEqual(consistencyProof(leaves.slice(0, n), m, n));
        if (m < n) expect(verifyConsistency(m, n, proof, root, tree.root(m))).toBe(false);
      }
    }
  });

  const { tree: big, leaves: bigLeaves } = treeOf(300);
  const sizeAndIndex = fc
    .integer({ min: 1, max: 300 })
    .chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 0, max: n - 1 })));
  const twoSizes = fc
    .integer({ min: 1, max: 300 })
    .chain((n) => fc.tuple(fc.integer({ min: 1, max: n }), fc.constant(n)));

  it('has the root of a naive recursive MTH (property, n <= 300)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), (n) => {
        const expected = naiveRoot(bigLeaves.slice(0, n));
        expect(big.root(n)).toEqual(expected);
        expect(rootOf(bigLeaves.slice(0, n))).toEqual(expected);
      }),
    );
  });

  it('verifies every inclusion proof and refuses any single flipped bit (property, n <= 300)', () => {
    fc.assert(
      fc.property(sizeAndIndex, fc.nat(), fc.integer({ min: 0, max: 255 }), ([n, m], e, bit) => {
        const proof = big.inclusionProof(m, n);
        const root = big.root(n);
        expect(verifyInclusion(m, n, bigLeaves[m]!, proof, root)).toBe(true);
        if (proof.length > 0) {
          expect(
            verifyInclusion(m, n, bigLeaves[m]!, flipBit(proof, e % proof.length, bit), root),
          ).toBe(false);
          expect(verifyInclusion(m, n, bigLeaves[m]!, proof.slice(1), root)).toBe(false);
        }
        expect(verifyInclusion(m, n, bigLeaves[m]!, [...proof, root], root)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('verifies every consistency proof and refuses any single flipped bit (property, n <= 300)', () => {
    fc.assert(
      fc.property(twoSizes, fc.nat(), fc.integer({ min: 0, max: 255 }), ([m, n], e, bit) => {
        const proof = big.consistencyProof(m, n);
        const [root1, root2] = [big.root(m), big.root(n)];
        expect(verifyConsistency(m, n, proof, root1, root2)).toBe(true);
        if (proof.length > 0) {
          expect(verifyConsistency(m, n, flipBit(proof, e % proof.length, bit), root1, root2)).toBe(
            false,
          );
          expect(verifyConsistency(m, n, proof.slice(0, -1), root1, root2)).toBe(false);
        }
        expect(verifyConsistency(m, n, proof, flipBit([root1], 0, bit)[0]!, root2)).toBe(false);
        expect(verifyConsistency(m, n, proof, root1, flipBit([root2], 0, bit)[0]!)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('reads O(log n) stored hashes per root and proof', () => {
    const { tree } = treeOf(40_000);
    let reads = 0;
    const counting: HashReader = {
      perfectHash: (level, index) => {
        reads++;
        return tree.perfectHash(level, index);
      },
    };
    const measure = (f: () => unknown) => {
      reads = 0;
      f();
      return reads;
    };
    // log2(40000) < 16: a proof reads at most one sibling per level plus the ragged right edge.
    expect(measure(() => inclusionProof(counting, 31_337, 39_999))).toBeLessThanOrEqual(2 * 16);
    expect(measure(() => consistencyProof(counting, 31_337, 39_999))).toBeLessThanOrEqual(
      2 * 16 + 1,
    );
    expect(measure(() => appendedNodes(counting, 32_767, leafHash(Buffer.alloc(0))))).toBe(15);
    expect(tree.inclusionProof(31_337, 39_999)).toEqual(inclusionProof(counting, 31_337, 39_999));
  });

  it('names the completed perfect subtrees an append writes', () => {
    const { tree, leaves } = treeOf(7);
    const added = appendedNodes(tree, 7, leaves[0]!);
    expect(added.map(({ level, index }) => [level, index])).toEqual([
      [0, 7],
      [1, 3],
      [2, 1],
      [3, 0],
    ]);
    expect(appendedNodes(tree, 6, leaves[0]!)).toHaveLength(1);
    tree.appendLeafHash(leaves[0]!);
    expect(tree.perfectHash(3, 0)).toEqual(added[3]!.hash);
    expect(tree.perfectHash(3, 0)).toEqual(tree.root());
  });

  it('refuses proofs the tree cannot serve', () => {
    const { tree, leaves } = treeOf(5);
    expect(() => tree.inclusionProof(5, 5)).toThrow(ProofError);
    expect(() => tree.inclusionProof(0, 6)).toThrow(ProofError);
    expect(() => tree.inclusionProof(-1, 5)).toThrow(ProofError);
    expect(() => tree.inclusionProof(0.5, 5)).toThrow(ProofError);
    expect(() => tree.consistencyProof(4, 3)).toThrow(ProofError);
    expect(() => tree.consistencyProof(1, 6)).toThrow(ProofError);
    expect(() => tree.root(6)).toThrow(ProofError);
    expect(() => inclusionProof(leaves, 0, 6)).toThrow(ProofError);
    expect(() => tree.perfectHash(1, 2)).toThrow(ProofError);
    expect(() => tree.appendLeafHash(Buffer.alloc(31))).toThrow(ProofError);
    // The empty tree is consistent with every tree; the witness protocol sends an empty proof.
    expect(tree.consistencyProof(0, 5)).toEqual([]);
    expect(tree.consistencyProof(5, 5)).toEqual([]);
  });

  it('refuses malformed verification input instead of throwing', () => {
    const { tree, leaves } = treeOf(4);
    const root = tree.root();
    const proof = tree.inclusionProof(1);
    expect(verifyInclusion(1, 4, leaves[1]!, proof, root)).toBe(true);
    expect(verifyInclusion(1.5, 4, leaves[1]!, proof, root)).toBe(false);
    expect(verifyInclusion(-1, 4, leaves[1]!, proof, root)).toBe(false);
    expect(verifyInclusion(1, Number.NaN, leaves[1]!, proof, root)).toBe(false);
    expect(verifyInclusion(1, 4, leaves[1]!.subarray(1), proof, root)).toBe(false);
    expect(verifyConsistency(2, 2 ** 60, tree.consistencyProof(2), tree.root(2), root)).toBe(false);
    expect(verifyConsistency(2, 4, tree.consistencyProof(2), tree.root(2), root)).toBe(true);
  });
});
