import { createHash, hash } from 'node:crypto';

// RFC 6962 / RFC 9162 Merkle tree over SHA-256. Sizes and indexes are JavaScript numbers limited to
// safe integers (2^53 - 1 leaves), and all index arithmetic uses division rather than the 32-bit
// bitwise operators, which would silently wrap above 2^31.

/** Size in bytes of every hash in the tree (SHA-256). */
export const HASH_SIZE = 32;

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** Error thrown when a root or proof is asked for with sizes or indexes the tree cannot serve. */
export class ProofError extends Error {
  override name = 'ProofError';
}

/** Root of the empty tree: SHA-256 of no bytes. */
export function emptyRoot(): Buffer {
  return createHash('sha256').digest();
}

/** RFC 6962 leaf hash: SHA-256(0x00 || data). */
export function leafHash(data: Uint8Array): Buffer {
  // crypto.hash (one call, no Hash object) is markedly faster for the small inputs of a log.
  return hash('sha256', Buffer.concat([LEAF_PREFIX, data]), 'buffer');
}

/** The leaf hash of the UTF-8 encoding of `text`, without encoding it separately first. */
export function leafHashOfText(text: string): Buffer {
  return hash('sha256', `\u0000${text}`, 'buffer');
}

/** RFC 6962 interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return hash('sha256', Buffer.concat([NODE_PREFIX, left, right]), 'buffer');
}

/** Address of a perfect subtree: the 2^level leaves starting at leaf `index * 2^level`. */
export interface NodeId {
  readonly level: number;
  readonly index: number;
}

/** A perfect subtree with its hash, as an append-only store persists it. */
export interface StoredNode extends NodeId {
  readonly hash: Buffer;
}

/**
 * Read access to the hashes of perfect subtrees: the port a persistent log store implements.
 *
 * Level 0 holds the leaf hashes; (level, index) is the root of the complete subtree over leaves
 * [index * 2^level, (index + 1) * 2^level). Only subtrees complete within the tree are stored,
 * which is what C2SP tlog-tiles serves (a tile is 256 such hashes at one level, 8 levels apart),
 * so a database can keep one row per (level, index) or one blob per tile. Every root and proof
 * below reads O(log n) of these hashes; a store whose reads are asynchronous can fetch the node
 * ids of a plan (`rootPlan`, `inclusionPlan`, `consistencyPlan`) in one batch and hand a
 * map-backed reader to `resolvePlan`.
 */
export interface HashReader {
  /** Hash of the complete subtree at (level, index); throws if the store does not hold it. */
  perfectHash(level: number, index: number): Buffer;
}

/** The perfect subtrees behind each element of a proof, in proof order, left to right within an element. */
export type ProofPlan = NodeId[][];

function checkCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new ProofError(`${what} must be a non-negative safe integer, got ${n}`);
  }
}

/** Largest power of two strictly below n (n >= 2): MTH's split point. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * The perfect subtrees covering [begin, end), largest first. Every range MTH recurses into starts
 * at a multiple of the next power of two at or above its length, so the pieces are aligned; the
 * MTH of the range is their right fold, because MTH splits off the largest power of two first.
 */
function rangeNodes(begin: number, end: number): NodeId[] {
  const ids: NodeId[] = [];
  let at = begin;
  while (at < end) {
    let size = 1;
    let level = 0;
    while (size * 2 <= end - at) {
      size *= 2;
      level++;
    }
    ids.push({ level, index: at / size });
    at += size;
  }
  return ids;
}

/** MTH of consecutive perfect subtrees given largest first (the right fold of their hashes). */
function foldRight(hashes: readonly Uint8Array[]): Buffer {
  const last = hashes.at(-1);
  if (last === undefined) return emptyRoot();
  let h: Buffer = Buffer.from(last);
  for (let i = hashes.length - 2; i >= 0; i--) h = nodeHash(hashes[i]!, h);
  return h;
}

/** The perfect subtrees whose right fold is the root of the tree of the first `size` leaves. */
export function rootPlan(size: number): NodeId[] {
  checkCount(size, 'tree size');
  return rangeNodes(0, size);
}

/** The perfect subtrees behind each element of the inclusion proof of leaf `index` in a tree of `size` leaves (RFC 6962 PATH). */
export function inclusionPlan(index: number, size: number): ProofPlan {
  checkCount(index, 'leaf index');
  checkCount(size, 'tree size');
  if (index >= size) throw new ProofError(`leaf index ${index} is not below tree size ${size}`);
  const plan: ProofPlan = [];
  let begin = 0;
  let end = size;
  // Walk down from the root and record the sibling of the side holding the leaf; PATH lists
  // them leaf first, so the list is reversed at the end.
  while (end - begin > 1) {
    const mid = begin + splitPoint(end - begin);
    if (index < mid) {
      plan.push(rangeNodes(mid, end));
      end = mid;
    } else {
      plan.push(rangeNodes(begin, mid));
      begin = mid;
    }
  }
  return plan.reverse();
}

/**
 * The perfect subtrees behind each element of the consistency proof from `size1` to `size2`
 * leaves (RFC 6962 SUBPROOF). Empty when the sizes are equal or `size1` is 0: the empty tree is
 * consistent with every tree, which is how the tlog-witness protocol treats it.
 */
export function consistencyPlan(size1: number, size2: number): ProofPlan {
  checkCount(size1, 'first size');
  checkCount(size2, 'second size');
  if (size1 > size2) throw new ProofError(`first size ${size1} exceeds second size ${size2}`);
  const plan: ProofPlan = [];
  if (size1 === 0) return plan;
  let begin = 0;
  let end = size2;
  // b of SUBPROOF: true while the old tree is still a prefix of the current range's left edge.
  let whole = true;
  while (size1 !== end) {
    const mid = begin + splitPoint(end - begin);
    if (size1 <= mid) {
      plan.push(rangeNodes(mid, end));
      end = mid;
    } else {
      plan.push(rangeNodes(begin, mid));
      begin = mid;
      whole = false;
    }
  }
  if (!whole) plan.push(rangeNodes(begin, end));
  return plan.reverse();
}

/** Reads the hashes a plan names and folds each element into one proof hash. */
export function resolvePlan(plan: ProofPlan, reader: HashReader): Buffer[] {
  return plan.map((ids) => foldRight(ids.map((id) => reader.perfectHash(id.level, id.index))));
}

/** A reader over a plain list of leaf hashes, computing each perfect subtree from its leaves. */
function arrayReader(leafHashes: readonly Uint8Array[]): HashReader {
  return {
    perfectHash(level, index) {
      const width = 2 ** level;
      const begin = index * width;
      if (begin + width > leafHashes.length) {
        throw new ProofError(`subtree (${level}, ${index}) is beyond ${leafHashes.length} leaves`);
      }
      return rootOf(leafHashes.slice(begin, begin + width));
    },
  };
}

function readerOf(source: HashReader | readonly Uint8Array[]): HashReader {
  return Array.isArray(source) ? arrayReader(source) : (source as HashReader);
}

/** RFC 6962 MTH of a list of leaf hashes, in one pass with O(log n) memory. */
export function rootOf(leafHashes: readonly Uint8Array[]): Buffer {
  // A stack of perfect subtrees, largest first: merging equal neighbours on every push keeps it
  // the binary decomposition of the count so far, whose right fold is MTH.
  const stack: { level: number; hash: Buffer }[] = [];
  for (const leaf of leafHashes) {
    let top: { level: number; hash: Buffer } = { level: 0, hash: Buffer.from(leaf) };
    for (let prev = stack.at(-1); prev && prev.level === top.level; prev = stack.at(-1)) {
      stack.pop();
      top = { level: top.level + 1, hash: nodeHash(prev.hash, top.hash) };
    }
    stack.push(top);
  }
  return foldRight(stack.map((s) => s.hash));
}

/** Root of the tree of the first `size` leaves, read from stored perfect subtrees. */
export function rootAt(reader: HashReader, size: number): Buffer {
  return foldRight(rootPlan(size).map((id) => reader.perfectHash(id.level, id.index)));
}

/** Inclusion proof of leaf `index` in the tree of the first `size` leaves (RFC 6962 PATH). */
export function inclusionProof(
  source: HashReader | readonly Uint8Array[],
  index: number,
  size: number,
): Buffer[] {
  return resolvePlan(inclusionPlan(index, size), readerOf(source));
}

/** Consistency proof from the tree of `size1` leaves to the tree of `size2` leaves (RFC 6962 PROOF). */
export function consistencyProof(
  source: HashReader | readonly Uint8Array[],
  size1: number,
  size2: number,
): Buffer[] {
  return resolvePlan(consistencyPlan(size1, size2), readerOf(source));
}

/**
 * The perfect subtrees completed by appending leaf `index` with hash `hash`: the leaf itself and
 * each parent whose right edge it closes. These are exactly the rows an append-only store writes;
 * computing them reads the O(log n) left siblings from the store.
 */
export function appendedNodes(reader: HashReader, index: number, hash: Uint8Array): StoredNode[] {
  checkCount(index, 'leaf index');
  if (hash.length !== HASH_SIZE) throw new ProofError(`a leaf hash has ${HASH_SIZE} bytes`);
  let node: StoredNode = { level: 0, index, hash: Buffer.from(hash) };
  const out = [node];
  while (node.index % 2 === 1) {
    const left = reader.perfectHash(node.level, node.index - 1);
    node = { level: node.level + 1, index: (node.index - 1) / 2, hash: nodeHash(left, node.hash) };
    out.push(node);
  }
  return out;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

// Math.log2 rounds near 2^53 (log2(2^53 - 1) === 53), so test by doubling instead.
function isPowerOfTwo(n: number): boolean {
  let p = 1;
  while (p < n) p *= 2;
  return p === n;
}

function isCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/** Verifies an inclusion proof per RFC 9162 §2.1.3.2; false for any malformed input. */
export function verifyInclusion(
  leafIdx: number,
  treeSize: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isCount(leafIdx) || !isCount(treeSize) || leafIdx >= treeSize) return false;
  if (leaf.length !== HASH_SIZE || root.length !== HASH_SIZE) return false;
  let fn = leafIdx;
  let sn = treeSize - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      // Skip the levels where this node has no right sibling (the tree's ragged right edge).
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalBytes(r, root);
}

/**
 * Verifies a consistency proof per RFC 9162 §2.1.4.2; false for any malformed input. Like the
 * reference verifier it refuses `size1` 0 (a useless check), and for equal sizes it only asks for
 * an empty proof and equal roots.
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): boolean {
  if (!isCount(size1) || !isCount(size2) || size1 === 0 || size1 > size2) return false;
  if (size1 === size2) return proof.length === 0 && equalBytes(root1, root2);
  if (proof.length === 0) return false;
  // When the old tree is a perfect subtree the proof omits its root, which the verifier knows.
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : [...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr: Buffer = Buffer.from(path[0]!);
  let sr = fr;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalBytes(fr, root1) && equalBytes(sr, root2);
}

/** An append-only Merkle tree held in memory: the reference implementation of a log's hash store. */
export class MemoryTree implements HashReader {
  // levels[L][i] is the perfect subtree (L, i); a store on disk keeps the same rows.
  private readonly levels: Buffer[][] = [];

  /** Number of leaves appended so far. */
  get size(): number {
    return this.levels[0]?.length ?? 0;
  }

  /** Appends a leaf by its data and returns its index. */
  append(data: Uint8Array): number {
    return this.appendLeafHash(leafHash(data));
  }

  /** Appends a leaf by its hash and returns its index. */
  appendLeafHash(hash: Uint8Array): number {
    const index = this.size;
    for (const node of appendedNodes(this, index, hash)) {
      let level = this.levels[node.level];
      if (!level) {
        level = [];
        this.levels[node.level] = level;
      }
      level.push(node.hash);
    }
    return index;
  }

  /** Hash of the complete subtree at (level, index). */
  perfectHash(level: number, index: number): Buffer {
    const hash = this.levels[level]?.[index];
    if (!hash) throw new ProofError(`subtree (${level}, ${index}) is not complete`);
    return hash;
  }

  /** Root of the tree of the first `size` leaves (default: all). */
  root(size = this.size): Buffer {
    this.checkSize(size);
    return rootAt(this, size);
  }

  /** Inclusion proof of leaf `index` in the tree of the first `size` leaves (default: all). */
  inclusionProof(index: number, size = this.size): Buffer[] {
    this.checkSize(size);
    return inclusionProof(this, index, size);
  }

  /** Consistency proof from `size1` to `size2` leaves (default: all). */
  consistencyProof(size1: number, size2 = this.size): Buffer[] {
    this.checkSize(size2);
    return consistencyProof(this, size1, size2);
  }

  private checkSize(size: number): void {
    if (size > this.size) throw new ProofError(`tree size ${size} exceeds ${this.size} leaves`);
  }
}
