import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { formatCheckpoint, parseCheckpoint } from './checkpoint.js';
import { MemoryTree } from './merkle.js';
import {
  cosignatureTimestamp,
  generateSignerKey,
  type NoteSigner,
  noteSigner,
  noteVerifier,
  openNote,
  signNote,
  verifierKeyOf,
} from './signed-note.js';
import { generateWitnessKey, type LogClient, Witness, WitnessStateError } from './witness.js';

const ORIGIN = 'modelgate.example/audit/v1';
const LOG_SKEY = generateSignerKey(ORIGIN);
const LOG_VKEY = verifierKeyOf(LOG_SKEY);
const NOW = 1767225600;

/** An in-memory log: a MemoryTree, the log key, and a record of what the witness asked and sent. */
class FakeLog implements LogClient {
  readonly tree = new MemoryTree();
  note: string;
  /** Replaces the honest proof when set (a misbehaving log). */
  proofOverride: ((from: number, to: number) => Buffer[]) | undefined;
  failSubmit = false;
  readonly proofRequests: [number, number][] = [];
  readonly submitted: string[] = [];

  constructor(
    private readonly signer: NoteSigner = noteSigner(LOG_SKEY),
    readonly origin = ORIGIN,
  ) {
    this.note = this.sign();
  }

  /** Appends `n` events whose content depends on `salt`, so two logs can fork. */
  append(n: number, salt = ''): this {
    for (let i = 0; i < n; i++) this.tree.append(Buffer.from(`${salt}event ${this.tree.size}`));
    this.note = this.sign();
    return this;
  }

  /** A checkpoint note of the current tree (or a given root) under this log's key and origin. */
  sign(root = this.tree.root(), size = this.tree.size): string {
    return signNote(formatCheckpoint({ origin: this.origin, size, root }), [this.signer]);
  }

  async checkpoint(): Promise<string> {
    return this.note;
  }

  async consistencyProof(from: number, to: number): Promise<Buffer[]> {
    this.proofRequests.push([from, to]);
    return this.proofOverride?.(from, to) ?? this.tree.consistencyProof(from, to);
  }

  async submitCosignature(note: string): Promise<void> {
    if (this.failSubmit) throw new Error('connection reset');
    this.submitted.push(note);
    // The log keeps the cosigned note as its current checkpoint, as the real server will.
    this.note = note;
  }
}

let dir: string;
let stateFile: string;
let witnessKeys: { skey: string; vkey: string };
const newWitness = (over: { logKey?: string; now?: () => number } = {}) =>
  new Witness({
    key: witnessKeys.skey,
    logKey: over.logKey ?? LOG_VKEY,
    stateFile,
    now: over.now ?? (() => NOW),
  });
const stateText = () => readFileSync(stateFile, 'utf8');

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'modelgate-witness-'));
  stateFile = join(dir, 'witness-state.json');
  witnessKeys = generateWitnessKey('witness.example/w1');
});

describe('generateWitnessKey', () => {
  it('makes a cosignature/v1 key pair', () => {
    const { skey, vkey } = generateWitnessKey('witness.example/w2');
    expect(skey).toMatch(/^PRIVATE\+KEY\+witness\.example\/w2\+[0-9a-f]{8}\+/);
    expect(vkey).toBe(verifierKeyOf(skey));
    expect(Buffer.from(vkey.split('+').slice(2).join('+'), 'base64')[0]).toBe(0x04);
  });

  it('refuses a plain Ed25519 key as a witness key', () => {
    expect(
      () => new Witness({ key: generateSignerKey('w'), logKey: LOG_VKEY, stateFile: 'x' }),
    ).toThrow(/cosignature\/v1/);
  });
});

describe('Witness', () => {
  it('cosigns a growing log, checking consistency from the last size it cosigned', async () => {
    const log = new FakeLog().append(5);
    const w = newWitness();
    expect(await w.step(log)).toEqual({ status: 'cosigned', size: 5 });
    // First contact: nothing to be consistent with yet.
    expect(log.proofRequests).toEqual([]);

    log.append(10);
    expect(await w.step(log)).toEqual({ status: 'cosigned', size: 15 });
    expect(log.proofRequests).toEqual([[5, 15]]);

    const note = log.submitted.at(-1)!;
    // The cosignature verifies with the witness's vkey, and the log's signature is still there.
    const byWitness = openNote(note, [noteVerifier(witnessKeys.vkey)]);
    expect(cosignatureTimestamp(byWitness.verified[0]!.signature)).toBe(NOW);
    expect(parseCheckpoint(byWitness.text)).toMatchObject({ origin: ORIGIN, size: 15 });
    expect(byWitness.text).toBe(
      formatCheckpoint({ origin: ORIGIN, size: 15, root: log.tree.root() }),
    );
    expect(openNote(note, [noteVerifier(LOG_VKEY)]).verified).toHaveLength(1);

    expect(await w.step(log)).toEqual({ status: 'unchanged', size: 15 });
    expect(log.submitted).toHaveLength(2);
    expect(JSON.parse(stateText())).toEqual({
      origin: ORIGIN,
      size: 15,
      root: log.tree.root().toString('base64'),
    });
    expect(statSync(stateFile).mode & 0o777).toBe(0o600);
  });

  it('keeps other cosignatures and replaces only its own line', async () => {
    const log = new FakeLog().append(3);
    const otherKey = generateSignerKey('witness.example/other', 0x04);
    const other = noteSigner(otherKey, { now: () => NOW });
    const text = log.note.slice(0, log.note.lastIndexOf('\n\n') + 1);
    log.note += signNote(text, [other]).slice(text.length + 1);
    const w = newWitness();
    await w.step(log);
    const first = openNote(log.submitted[0]!, [
      noteVerifier(verifierKeyOf(otherKey)),
      noteVerifier(witnessKeys.vkey),
    ]);
    expect(first.verified.map((sig) => sig.name)).toEqual([
      'witness.example/other',
      'witness.example/w1',
    ]);
    // The log re-signs a grown tree but keeps the witness's old line, now stale for the new text.
    const stale = log.submitted[0]!.split('\n').find((l) => l.includes(' witness.example/w1 '))!;
    log.append(2);
    log.note += `${stale}\n`;
    expect(await w.step(log)).toEqual({ status: 'cosigned', size: 5 });
    const note = log.submitted[1]!;
    expect(note.match(/ witness\.example\/w1 /g)).toHaveLength(1);
    const opened = openNote(note, [noteVerifier(LOG_VKEY), noteVerifier(witnessKeys.vkey)]);
    expect(opened.verified.map((sig) => sig.name)).toEqual([ORIGIN, 'witness.example/w1']);
  });

  it('starts from an empty log', async () => {
    const log = new FakeLog();
    expect(await newWitness().step(log)).toEqual({ status: 'cosigned', size: 0 });
    log.append(4);
    expect(await newWitness().step(log)).toEqual({ status: 'cosigned', size: 4 });
    // From size 0 there is no proof to ask for: the empty tree is consistent with every tree.
    expect(log.proofRequests).toEqual([]);
  });

  it('keeps its state across instances', async () => {
    const log = new FakeLog().append(8);
    await newWitness().step(log);
    const again = newWitness();
    expect(await again.state()).toEqual({
      origin: ORIGIN,
      size: 8,
      root: log.tree.root().toString('base64'),
    });
    expect(await again.step(log)).toEqual({ status: 'unchanged', size: 8 });
    log.append(3);
    expect(await again.step(log)).toEqual({ status: 'cosigned', size: 11 });
    expect(log.proofRequests).toEqual([[8, 11]]);
  });

  it('cosigns the same tree again when the log lost its cosignature', async () => {
    const log = new FakeLog().append(6);
    log.failSubmit = true;
    const w = newWitness();
    await expect(w.step(log)).rejects.toThrow('connection reset');
    // The state was saved before the submission: the witness is committed to this tree.
    expect(JSON.parse(stateText()).size).toBe(6);
    log.failSubmit = false;
    expect(await w.step(log)).toEqual({ status: 'cosigned', size: 6 });
    expect(log.submitted).toHaveLength(1);
    expect(await w.step(log)).toEqual({ status: 'unchanged', size: 6 });
  });

  describe('refuses, leaving its state as it was', () => {
    let log: FakeLog;
    let before: string;

    beforeEach(async () => {
      log = new FakeLog().append(15);
      await newWitness().step(log);
      before = stateText();
      log.submitted.length = 0;
    });

    const expectRefused = async (reason: RegExp, size?: number) => {
      const r = await newWitness().step(log);
      expect(r.status).toBe('refused');
      expect(r.reason).toMatch(reason);
      if (size !== undefined) expect(r.size).toBe(size);
      expect(stateText()).toBe(before);
      expect(log.submitted).toEqual([]);
    };

    it('a rollback to a smaller, validly signed checkpoint', async () => {
      const old = new FakeLog().append(10);
      log.note = old.note;
      await expectRefused(
        /^rollback: checkpoint size 10 is smaller than size 15, which this witness already cosigned$/,
        10,
      );
    });

    it('a split view: another root at the size it cosigned', async () => {
      log.note = new FakeLog().append(15, 'fork ').note;
      await expectRefused(
        /^split view: size 15 was cosigned with root \S+, the log now shows root \S+$/,
        15,
      );
    });

    it('a bad consistency proof', async () => {
      log.append(5);
      log.proofOverride = (from, to) => {
        const proof = log.tree.consistencyProof(from, to);
        proof[0] = Buffer.from(proof[0]!);
        proof[0][0]! ^= 0x01;
        return proof;
      };
      await expectRefused(
        /^inconsistent: the consistency proof from size 15 to 20 does not verify/,
        20,
      );
      log.proofOverride = () => [];
      await expectRefused(/^inconsistent/, 20);
    });

    it('a forked log that grew, with an honest proof of its own tree', async () => {
      const fork = new FakeLog().append(20, 'fork ');
      log.note = fork.note;
      log.proofOverride = (from, to) => fork.tree.consistencyProof(from, to);
      await expectRefused(/^inconsistent/, 20);
    });

    it('a checkpoint signed by another key', async () => {
      const impostor = new FakeLog(noteSigner(generateSignerKey(ORIGIN))).append(20);
      log.note = impostor.note;
      await expectRefused(/^bad log signature: no signature by a trusted key$/, 20);
    });

    it('a checkpoint whose signed text was altered', async () => {
      log.append(5);
      log.note = log.note.replace('\n20\n', '\n21\n');
      await expectRefused(/^bad log signature: invalid signature/, 21);
    });

    it('another origin under the same log key', async () => {
      log.note = new FakeLog(noteSigner(LOG_SKEY), 'other.example/audit').append(20).note;
      await expectRefused(/^other origin: the checkpoint is for "other\.example\/audit"/, 20);
    });

    it('a size-0 checkpoint without the empty-tree root', async () => {
      const empty = new FakeLog();
      empty.note = empty.sign(log.tree.root(), 0);
      const fresh = join(dir, 'fresh.json');
      const r = await new Witness({
        key: generateWitnessKey('witness.example/w9').skey,
        logKey: LOG_VKEY,
        stateFile: fresh,
      }).step(empty);
      expect(r).toMatchObject({ status: 'refused', size: 0 });
      expect(r.reason).toMatch(/empty-tree root/);
      expect(existsSync(fresh)).toBe(false);
    });

    it('everything from a log when the witness trusts another log key', async () => {
      const w = newWitness({ logKey: verifierKeyOf(generateSignerKey(ORIGIN)) });
      log.append(1);
      const r = await w.step(log);
      expect(r.status).toBe('refused');
      expect(r.reason).toMatch(/^bad log signature/);
      expect(stateText()).toBe(before);
    });
  });

  it('stops on a corrupt state file instead of starting afresh', async () => {
    writeFileSync(stateFile, '{"origin":"x","size":-1}');
    const log = new FakeLog().append(3);
    await expect(newWitness().step(log)).rejects.toBeInstanceOf(WitnessStateError);
    writeFileSync(stateFile, 'not json');
    await expect(newWitness().step(log)).rejects.toThrow(/is not JSON/);
    expect(log.submitted).toEqual([]);
  });

  it('runs overlapping steps one at a time', async () => {
    const log = new FakeLog().append(4);
    const w = newWitness();
    const results = await Promise.all([w.step(log), w.step(log), w.step(log)]);
    expect(results.map((r) => r.status)).toEqual(['cosigned', 'unchanged', 'unchanged']);
    expect(log.submitted).toHaveLength(1);
  });
});
