import { ModelgateError } from '../core/errors.js';
import { readOrCreateSecretFile } from '../core/secret-file.js';
import { type Checkpoint, formatCheckpoint, parseCheckpoint } from './checkpoint.js';
import {
  consistencyPlan,
  emptyRoot,
  type HashReader,
  inclusionPlan,
  leafHash,
  type NodeId,
  ProofError,
  resolvePlan,
  rootPlan,
} from './merkle.js';
import {
  generateSignerKey,
  type NoteSigner,
  type NoteVerifier,
  noteSigner,
  noteVerifier,
  openNote,
  parseNote,
  signNote,
  verifierKeyOf,
} from './signed-note.js';

/** An audit event as stored: its leaf (the exact bytes in the tree) and the content it digests. */
export interface StoredEvent {
  seq: number;
  time: string;
  actor: string;
  credential: string;
  action: string;
  subject: string;
  digest: string;
  /** The change's content, canonical JSON. */
  content: string;
  /** The leaf, canonical JSON; its hash is the tree's leaf. */
  leaf: string;
}

/** A stored checkpoint: size, root and the note the log signed. */
export interface StoredCheckpoint {
  size: number;
  root: string;
  note: string;
  createdAt: string;
}

/** Persistence of the audit log: events, subtree hashes, checkpoints and witness cosignatures. */
export interface AuditStore {
  /** Moves events recorded by committed changes into the log; returns the log's size. */
  integrate(): Promise<number>;
  /** Events recorded by committed changes and not yet in the log, oldest first. */
  pending(): Promise<Omit<StoredEvent, 'seq' | 'leaf'>[]>;
  /** Number of events in the log. */
  size(): Promise<number>;
  /** Events with index in [from, to), in order. */
  events(from: number, to: number): Promise<StoredEvent[]>;
  /** The same, only index, leaf and content, for reading a whole log fast. */
  rawEvents(from: number, to: number): Promise<{ seq: number; leaf: string; content: string }[]>;
  /** Events whose subject equals one of `equals` or starts with one of `prefixes`, oldest first. */
  eventsAbout(
    match: { equals: string[]; prefixes: string[] },
    opts: { from?: string; to?: string; limit: number; newestFirst?: boolean },
  ): Promise<StoredEvent[]>;
  /** Stored leaf hashes (level 0, lowercase hex) of events in [from, to), by index. */
  leafHashes(from: number, to: number): Promise<Map<number, string>>;
  /** Complete-subtree hashes by id; missing ids are absent from the map (key `level/index`). */
  nodes(ids: readonly NodeId[]): Promise<Map<string, Buffer>>;
  /** Stored checkpoints, oldest first (size ascending). */
  checkpoints(opts?: { fromSize?: number; limit?: number }): Promise<StoredCheckpoint[]>;
  latestCheckpoint(): Promise<StoredCheckpoint | undefined>;
  /** Stores a checkpoint unless one of that size exists (another process signed it first). */
  addCheckpoint(c: Omit<StoredCheckpoint, 'createdAt'>, at: string): Promise<void>;
  /** Cosignature lines stored for a checkpoint size. */
  cosignatures(size: number): Promise<string[]>;
  /** Stores (or replaces) one witness's cosignature line for a checkpoint. */
  addCosignature(size: number, witness: string, line: string, at: string): Promise<void>;
}

const key = (level: number, index: number) => `${level}/${index}`;

/** A signed note with further signature lines (witness cosignatures) appended. */
export function noteWithCosignatures(note: string, lines: readonly string[]): string {
  return lines.length === 0 ? note : `${note.replace(/\n$/, '')}\n${lines.join('\n')}\n`;
}

/**
 * The tamper-evident audit log: reads the events stores append, signs checkpoints (C2SP
 * tlog-checkpoint in a signed note) when the log has grown, serves inclusion and consistency
 * proofs from stored subtree hashes, and keeps witnesses' cosignatures.
 */
export class AuditLog {
  private readonly signer: NoteSigner;
  private readonly verifier: NoteVerifier;
  private readonly witnesses: Map<string, NoteVerifier>;
  /** The log's verifier key (C2SP vkey), which anyone checks checkpoints with. */
  readonly vkey: string;
  readonly origin: string;
  private signing: Promise<StoredCheckpoint | undefined> | undefined;

  constructor(
    private readonly store: AuditStore,
    skey: string,
    witnessKeys: readonly string[] = [],
    private readonly now: () => Date = () => new Date(),
  ) {
    this.signer = noteSigner(skey);
    this.vkey = verifierKeyOf(skey);
    this.verifier = noteVerifier(this.vkey);
    this.origin = this.signer.name;
    this.witnesses = new Map(
      witnessKeys.map((k) => {
        const v = noteVerifier(k);
        return [v.name, v] as const;
      }),
    );
  }

  /** The root of the first `size` events. */
  async root(size: number): Promise<Buffer> {
    if (size === 0) return emptyRoot();
    const [root] = await this.resolve([rootPlan(size)]);
    if (!root) throw new Error('no root');
    return root;
  }

  private async resolve(plan: NodeId[][]): Promise<Buffer[]> {
    const found = await this.store.nodes(plan.flat());
    const reader: HashReader = {
      perfectHash: (level, index) => {
        const h = found.get(key(level, index));
        if (!h) throw new Error(`audit log: subtree hash ${level}/${index} is missing`);
        return h;
      },
    };
    return resolvePlan(plan, reader);
  }

  private async checkSizes(...sizes: number[]): Promise<number> {
    const n = await this.store.size();
    for (const s of sizes)
      if (!Number.isSafeInteger(s) || s < 0 || s > n)
        throw new ModelgateError('AUDIT_RANGE', `size ${s} is outside the log (0 to ${n})`);
    return n;
  }

  /**
   * The latest checkpoint with its cosignatures, signing a new one first when events were
   * appended since the last. Several processes may sign the same size: Ed25519 is
   * deterministic, so they sign the same note.
   */
  async checkpoint(): Promise<string> {
    const latest = await this.signLatest();
    if (!latest) {
      // An empty log: a checkpoint of size 0.
      return signNote(formatCheckpoint({ origin: this.origin, size: 0, root: emptyRoot() }), [
        this.signer,
      ]);
    }
    return this.withCosignatures(latest);
  }

  /** A stored checkpoint's note with the witness cosignatures stored for it. */
  async withCosignatures(c: StoredCheckpoint): Promise<string> {
    return noteWithCosignatures(c.note, await this.store.cosignatures(c.size));
  }

  /**
   * Moves committed events into the tree, then signs a checkpoint for the new size if the
   * latest is older; returns the latest. Calls in one process run one after another, each
   * after the previous: a caller whose writes committed just now must not be handed a run that
   * integrated before them.
   */
  async signLatest(): Promise<StoredCheckpoint | undefined> {
    const previous = this.signing;
    const run = (async () => {
      await previous?.catch(() => undefined);
      const size = await this.store.integrate();
      const latest = await this.store.latestCheckpoint();
      if (size === 0 || (latest && latest.size >= size)) return latest;
      const root = await this.root(size);
      const body: Checkpoint = { origin: this.origin, size, root };
      const note = signNote(formatCheckpoint(body), [this.signer]);
      await this.store.addCheckpoint(
        { size, root: root.toString('base64'), note },
        this.now().toISOString(),
      );
      return this.store.latestCheckpoint();
    })();
    this.signing = run;
    try {
      return await run;
    } finally {
      if (this.signing === run) this.signing = undefined;
    }
  }

  /** An inclusion proof for event `index` in the tree of `size` events. */
  async inclusionProof(
    index: number,
    size: number,
  ): Promise<{ leafHash: Buffer; proof: Buffer[] }> {
    await this.checkSizes(size);
    if (!Number.isSafeInteger(index) || index < 0 || index >= size)
      throw new ModelgateError('AUDIT_RANGE', `event ${index} is not in a tree of size ${size}`);
    const [event] = await this.store.events(index, index + 1);
    if (!event) throw new ModelgateError('AUDIT_RANGE', `event ${index} is not in the log`);
    return {
      leafHash: leafHash(Buffer.from(event.leaf, 'utf8')),
      proof: await this.resolve(inclusionPlan(index, size)),
    };
  }

  /** A consistency proof between the trees of `from` and `to` events. */
  async consistencyProof(from: number, to: number): Promise<Buffer[]> {
    await this.checkSizes(from, to);
    if (from > to) throw new ModelgateError('AUDIT_RANGE', `from ${from} is larger than to ${to}`);
    try {
      return await this.resolve(consistencyPlan(from, to));
    } catch (e) {
      if (e instanceof ProofError) throw new ModelgateError('AUDIT_RANGE', e.message);
      throw e;
    }
  }

  /**
   * Takes a checkpoint note that carries witness cosignatures: the text must be a checkpoint
   * this log signed, and each cosignature line by a configured witness must verify; those
   * are stored. Returns the names of the witnesses whose cosignature was stored.
   */
  async addCosignatures(note: string): Promise<string[]> {
    let parsed: ReturnType<typeof parseNote>;
    try {
      parsed = parseNote(note);
    } catch (e) {
      throw new ModelgateError('COSIGNATURE_REFUSED', `not a signed note: ${(e as Error).message}`);
    }
    let c: Checkpoint;
    try {
      c = parseCheckpoint(parsed.text);
    } catch (e) {
      throw new ModelgateError('COSIGNATURE_REFUSED', `not a checkpoint: ${(e as Error).message}`);
    }
    const stored = (await this.store.checkpoints({ fromSize: c.size, limit: 1 }))[0];
    if (!stored || stored.size !== c.size || parseNote(stored.note).text !== parsed.text)
      throw new ModelgateError(
        'COSIGNATURE_REFUSED',
        `this log signed no checkpoint with this text (size ${c.size})`,
      );
    const accepted: string[] = [];
    for (const sig of parsed.signatures) {
      const w = this.witnesses.get(sig.name);
      if (!w || w.keyId !== sig.keyId) continue;
      // openNote checks the line against this one witness; a bad signature throws.
      const line = `\u2014 ${sig.name} ${Buffer.concat([keyIdBytes(sig.keyId), sig.signature]).toString('base64')}`;
      try {
        openNote(`${parsed.text}\n${line}\n`, [w]);
      } catch (e) {
        throw new ModelgateError(
          'COSIGNATURE_REFUSED',
          `the cosignature of ${sig.name} does not verify: ${(e as Error).message}`,
        );
      }
      await this.store.addCosignature(c.size, sig.name, line, this.now().toISOString());
      accepted.push(sig.name);
    }
    if (accepted.length === 0)
      throw new ModelgateError(
        'COSIGNATURE_REFUSED',
        `no cosignature by a configured witness (known: ${[...this.witnesses.keys()].join(', ') || 'none; set MODELGATE_WITNESS_KEYS'})`,
      );
    return accepted;
  }

  /** Whether the log signed this note (its own signature verifies). */
  verifiesOwn(note: string): boolean {
    try {
      openNote(note, [this.verifier]);
      return true;
    } catch {
      return false;
    }
  }
}

function keyIdBytes(id: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(id >>> 0);
  return b;
}

/**
 * The log's signing key: read from `file`, or created there (mode 0600) on first start. The
 * key's name is the log's origin. A key file readable by others is refused.
 */
export function loadOrCreateLogKey(file: string, origin: string, create: boolean): string {
  const skey = readOrCreateSecretFile(file, 'audit log key', create, () =>
    generateSignerKey(origin),
  );
  noteSigner(skey);
  return skey;
}
