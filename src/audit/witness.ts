import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { decodeBase64 } from './base64.js';
import { type Checkpoint, parseCheckpoint } from './checkpoint.js';
import { emptyRoot, HASH_SIZE, verifyConsistency } from './merkle.js';
import {
  COSIGNATURE_V1,
  ED25519,
  generateSignerKey,
  NoteError,
  type NoteSigner,
  type NoteVerifier,
  noteSigner,
  noteVerifier,
  openNote,
  parseNote,
  signNote,
  verifierKeyOf,
} from './signed-note.js';

// The witness core of C2SP tlog-witness, independent of transport: it keeps the largest
// checkpoint it has cosigned for one log, and cosigns a new one only if it is signed by the log
// and provably extends that one. It persists the new state before anything leaves the process,
// so even a crash between the two cannot make it cosign two inconsistent checkpoints.

/** The log as a witness sees it: its latest signed checkpoint, consistency proofs, and where cosignatures go. */
export interface LogClient {
  /** The log's latest signed checkpoint note. */
  checkpoint(): Promise<string>;
  /** RFC 6962 consistency proof from the tree of `from` leaves to the tree of `to` leaves. */
  consistencyProof(from: number, to: number): Promise<Buffer[]>;
  /** Hands the log the checkpoint note with this witness's cosignature line added. */
  submitCosignature(note: string): Promise<void>;
}

/** What a witness remembers of a log: the origin and the size and root (base64) of the largest checkpoint it cosigned. */
export interface WitnessState {
  readonly origin: string;
  readonly size: number;
  readonly root: string;
}

/** Options of a witness: its cosignature/v1 signer key, the log's verifier key, its state file and clock. */
export interface WitnessOptions {
  /** `PRIVATE+KEY+...` signer key of type 0x04 (cosignature/v1). */
  readonly key: string;
  /** The log's verifier key (vkey); only checkpoints it signs are cosigned. */
  readonly logKey: string;
  /** JSON file holding the WitnessState; created on the first cosignature, written atomically with mode 0600. */
  readonly stateFile: string;
  /** Current time in POSIX seconds, the cosignature timestamp (the same unit as the signed-note signer's clock). */
  readonly now?: () => number;
}

/** Outcome of one witness step: a new cosignature, nothing new to cosign, or a refused checkpoint with the reason. */
export interface WitnessStepResult {
  readonly status: 'cosigned' | 'unchanged' | 'refused';
  /** Size of the checkpoint the log served (0 when it could not be read). */
  readonly size: number;
  readonly reason?: string;
}

/** Error thrown when the state file cannot be read, parsed or written: the witness must stop, not start afresh. */
export class WitnessStateError extends Error {
  override name = 'WitnessStateError';
}

/** A new witness key pair: a cosignature/v1 signer key and its verifier key. */
export function generateWitnessKey(name: string): { skey: string; vkey: string } {
  const skey = generateSignerKey(name, COSIGNATURE_V1);
  return { skey, vkey: verifierKeyOf(skey) };
}

/** The signature type byte of a verifier key string. */
function vkeyType(vkey: string): number | undefined {
  const parts = vkey.split('+');
  return decodeBase64(parts.slice(2).join('+'))?.[0];
}

/** Reads and validates a state file; undefined when it does not exist yet. */
async function readState(file: string): Promise<WitnessState | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new WitnessStateError(`cannot read witness state ${file}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new WitnessStateError(`witness state ${file} is not JSON: ${(e as Error).message}`);
  }
  const s = value as Partial<WitnessState> | null;
  const root = typeof s?.root === 'string' ? decodeBase64(s.root) : undefined;
  if (
    typeof s?.origin !== 'string' ||
    s.origin === '' ||
    typeof s.size !== 'number' ||
    !Number.isSafeInteger(s.size) ||
    s.size < 0 ||
    root?.length !== HASH_SIZE
  ) {
    // Starting over from an unreadable state would let a log roll this witness back.
    throw new WitnessStateError(
      `witness state ${file} is not {origin, size, root}: fix or remove it deliberately`,
    );
  }
  return { origin: s.origin, size: s.size, root: s.root as string };
}

/** Writes the state atomically: a temporary file, fsync, rename over the old one, fsync of the folder. */
async function writeState(file: string, state: WitnessState): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(state, null, 2)}\n`);
      // open() applies the mode only when it creates the file; a stale temp file keeps its own.
      await fh.chmod(0o600);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw new WitnessStateError(`cannot write witness state ${file}: ${(e as Error).message}`);
  }
  // The rename is durable only once the folder entry is on disk.
  try {
    const dir = await open(dirname(file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // Some platforms cannot fsync a directory; the file itself is already synced.
  }
}

/** The size an unverified note claims, for the refusal report only; 0 when it has none. */
function claimedSize(note: string): number {
  try {
    return parseCheckpoint(parseNote(note).text).size;
  } catch {
    return 0;
  }
}

/** The note with this witness's cosignature line in place of any earlier line under its key. */
function addCosignature(note: string, text: string, signer: NoteSigner): string {
  const others = parseNote(note)
    .signatures.filter((s) => !(s.name === signer.name && s.keyId === signer.keyId))
    .map((s) => {
      const id = Buffer.alloc(4);
      id.writeUInt32BE(s.keyId);
      return `\u2014 ${s.name} ${Buffer.concat([id, s.signature]).toString('base64')}\n`;
    });
  const ours = signNote(text, [signer]).slice(text.length + 1);
  return `${text}\n${others.join('')}${ours}`;
}

/** A C2SP-style witness of one log: verifies each new checkpoint against the last one it cosigned, then cosigns it. */
export class Witness {
  private readonly signer: NoteSigner;
  private readonly self: NoteVerifier;
  private readonly log: NoteVerifier;
  private readonly stateFile: string;
  // Steps run one at a time: two overlapping steps could both pass the check against the old state.
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: WitnessOptions) {
    const vkey = verifierKeyOf(opts.key);
    if (vkeyType(vkey) !== COSIGNATURE_V1) {
      throw new NoteError(
        'INVALID_KEY',
        'a witness key must be a cosignature/v1 (type 0x04) key: make one with generateWitnessKey',
      );
    }
    if (vkeyType(opts.logKey) !== ED25519) {
      throw new NoteError('INVALID_KEY', 'the log key must be an Ed25519 (type 0x01) verifier key');
    }
    this.signer = noteSigner(opts.key, opts.now ? { now: opts.now } : {});
    this.self = noteVerifier(vkey);
    this.log = noteVerifier(opts.logKey);
    this.stateFile = opts.stateFile;
  }

  /** This witness's verifier key name. */
  get name(): string {
    return this.signer.name;
  }

  /** The state last persisted, or undefined before the first cosignature. */
  state(): Promise<WitnessState | undefined> {
    return readState(this.stateFile);
  }

  /**
   * Fetches the log's checkpoint and cosigns it if it extends the last one cosigned. A checkpoint
   * that breaks the rules is refused and leaves the state as it was; transport and state-file
   * failures throw (WitnessStateError for the latter), since they say nothing about the log.
   */
  step(log: LogClient): Promise<WitnessStepResult> {
    const run = this.queue.then(() => this.stepNow(log));
    this.queue = run.catch(() => {});
    return run;
  }

  private async stepNow(log: LogClient): Promise<WitnessStepResult> {
    const state = await readState(this.stateFile);
    const note = await log.checkpoint();
    const refuse = (size: number, reason: string): WitnessStepResult => ({
      status: 'refused',
      size,
      reason,
    });

    let text: string;
    try {
      text = openNote(note, [this.log]).text;
    } catch (e) {
      return refuse(claimedSize(note), `bad log signature: ${(e as Error).message}`);
    }
    let cp: Checkpoint;
    try {
      cp = parseCheckpoint(text);
    } catch (e) {
      return refuse(0, `malformed checkpoint: ${(e as Error).message}`);
    }
    if (state && cp.origin !== state.origin) {
      return refuse(
        cp.size,
        `other origin: the checkpoint is for ${JSON.stringify(cp.origin)}, this witness follows ${JSON.stringify(state.origin)}`,
      );
    }
    const oldSize = state?.size ?? 0;
    const oldRoot = state ? Buffer.from(state.root, 'base64') : emptyRoot();
    if (cp.size === 0 && !cp.root.equals(emptyRoot())) {
      return refuse(0, 'a size-0 checkpoint must carry the empty-tree root');
    }
    if (cp.size < oldSize) {
      return refuse(
        cp.size,
        `rollback: checkpoint size ${cp.size} is smaller than size ${oldSize}, which this witness already cosigned`,
      );
    }
    if (cp.size === oldSize) {
      if (!cp.root.equals(oldRoot)) {
        return refuse(
          cp.size,
          `split view: size ${cp.size} was cosigned with root ${oldRoot.toString('base64')}, the log now shows root ${cp.root.toString('base64')}`,
        );
      }
      // Same tree: cosign again only if the log lost ours (say a submission failed after the
      // state was saved); that is safe, the state already vouches for exactly this tree.
      if (state && this.hasOwnCosignature(note)) return { status: 'unchanged', size: cp.size };
    } else if (oldSize > 0) {
      const proof = await log.consistencyProof(oldSize, cp.size);
      if (!verifyConsistency(oldSize, cp.size, proof, oldRoot, cp.root)) {
        return refuse(
          cp.size,
          `inconsistent: the consistency proof from size ${oldSize} to ${cp.size} does not verify, so checkpoint ${cp.size} does not extend the one cosigned`,
        );
      }
    }

    const cosigned = addCosignature(note, text, this.signer);
    // Saved before anything leaves the process: once a cosignature for this tree may exist,
    // the witness must never cosign a tree that does not extend it.
    await writeState(this.stateFile, {
      origin: cp.origin,
      size: cp.size,
      root: cp.root.toString('base64'),
    });
    await log.submitCosignature(cosigned);
    return { status: 'cosigned', size: cp.size };
  }

  private hasOwnCosignature(note: string): boolean {
    try {
      openNote(note, [this.self]);
      return true;
    } catch {
      return false;
    }
  }
}
