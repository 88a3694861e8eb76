import { canonicalize } from './canonical-json.js';
import { type Checkpoint, parseCheckpoint } from './checkpoint.js';
import { emptyRoot, leafHash, leafHashOfText, nodeHash } from './merkle.js';
import {
  cosignatureTimestamp,
  NoteError,
  type NoteVerifier,
  noteVerifier,
  openNote,
  parseNote,
} from './signed-note.js';

// The offline audit-log verifier behind `modelgate audit verify`: it trusts nothing but the log's
// public key (and, optionally, witness keys and a checkpoint its user saved earlier), rebuilds the
// Merkle tree from the stored event bytes and checks every signed checkpoint against it. It reads
// like a checklist and stops at the first violation, whose message names the event index or the
// checkpoint size so an operator knows where to look.

/**
 * One stored audit event: its log index, its exact leaf (as bytes, or as the text those bytes
 * encode in UTF-8, which saves a reader of a text column the round trip), and the leaf hash
 * stored beside it if any (bytes or lowercase hex).
 */
export interface LogLeaf {
  readonly index: number;
  readonly bytes?: Uint8Array;
  readonly text?: string;
  readonly storedLeafHash?: Uint8Array | string;
}

/** What the verifier reads: events in index order, signed checkpoint notes in stored order (oldest first), and the keys it trusts. */
export interface VerifyInput {
  readonly leaves: Iterable<LogLeaf>;
  readonly checkpoints: readonly string[];
  /** The log's verifier key (vkey); a malformed key throws NoteError INVALID_KEY, a usage error. */
  readonly logKey: string;
  /** Witness verifier keys (cosignature/v1) whose cosignatures on the latest checkpoint are counted. */
  readonly witnessKeys?: readonly string[];
  /** A signed checkpoint note the user saved from an earlier run: the log must not have rolled back or forked since. */
  readonly since?: string;
}

/** Stable codes of the ways a log can fail verification. */
export type ViolationKind =
  | 'missing-event'
  | 'duplicate-event'
  | 'malformed-event'
  | 'non-canonical-event'
  | 'missing-field'
  | 'out-of-order'
  | 'leaf-hash-mismatch'
  | 'no-checkpoint'
  | 'bad-signature'
  | 'malformed-checkpoint'
  | 'origin-mismatch'
  | 'sizes-decrease'
  | 'split-view'
  | 'truncated'
  | 'root-mismatch'
  | 'inconsistent'
  | 'rollback'
  | 'since-unverified';

/** The first thing found wrong with the log, located by event index or checkpoint size. */
export interface Violation {
  readonly kind: ViolationKind;
  readonly index?: number;
  readonly checkpointSize?: number;
  readonly message: string;
}

/** Names of the checks, in the order they run. */
export type CheckName =
  | 'events'
  | 'signatures'
  | 'order'
  | 'split-view'
  | 'roots'
  | 'consistency'
  | 'since'
  | 'witnesses'
  | 'coverage';

/** Outcome of one check: passed, failed (the violation), passed with warnings, or not run. */
export interface CheckResult {
  readonly name: CheckName;
  readonly status: 'ok' | 'fail' | 'warn' | 'skip';
  readonly detail: string;
}

/** A valid cosignature on the latest checkpoint by one of the trusted witnesses. */
export interface WitnessCosignature {
  readonly name: string;
  /** POSIX seconds the witness put in its cosignature. */
  readonly timestamp: number;
}

/** The verifier's answer: ok when no violation was found, with counts, each check's outcome and warnings. */
export interface VerifyReport {
  readonly ok: boolean;
  readonly checked: { events: number; checkpoints: number; latestSize: number };
  readonly violation?: Violation;
  readonly warnings: string[];
  readonly checks: CheckResult[];
  /** Trusted witnesses whose cosignature on the latest checkpoint verifies. */
  readonly witnessed: WitnessCosignature[];
  /** The log's origin, from its checkpoints. */
  readonly origin?: string;
  /** The latest signed checkpoint note as stored, for the user to save and pass as `since` next time. */
  readonly latestCheckpoint?: string;
}

const CHECK_ORDER: readonly CheckName[] = [
  'events',
  'signatures',
  'order',
  'split-view',
  'roots',
  'consistency',
  'since',
  'witnesses',
  'coverage',
];

const STRING_FIELDS = ['time', 'actor', 'credential', 'action', 'subject', 'digest'] as const;
// ISO-8601 date-time with an explicit offset, as Date.prototype.toISOString writes it.
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;
/** `sha256:` and 64 lowercase hex digits; checked by hand rather than by a pattern (per event). */
function isDigest(d: string): boolean {
  if (d.length !== 71 || !d.startsWith('sha256:')) return false;
  for (let i = 7; i < 71; i++) {
    const c = d.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Thrown inside the verifier to stop at the first violation; never escapes it. */
class Stop extends Error {
  constructor(readonly violation: Violation) {
    super(violation.message);
  }
}

function fail(kind: ViolationKind, message: string, at: Partial<Violation> = {}): never {
  throw new Stop({ kind, message, ...at });
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

// The leaf as the log writes it, with plain strings (no escapes, no surrogates): its fields in
// canonical key order. Matching it proves the text is canonical JSON without parsing and
// re-serialising it, the costliest step of verifying a large log; anything else (escapes,
// fields a later version adds) takes the general path.
const PLAIN = '"([^"\\\\\\u0000-\\u001f\\ud800-\\udfff]*)"';
const CANONICAL_LEAF = new RegExp(
  `^\\{"action":${PLAIN},"actor":${PLAIN},"credential":${PLAIN},"digest":${PLAIN},"seq":(0|[1-9][0-9]{0,15}),"subject":${PLAIN},"time":${PLAIN}\\}$`,
);

function canonicalFastPath(text: string): Record<string, unknown> | undefined {
  const m = CANONICAL_LEAF.exec(text);
  if (!m) return undefined;
  return {
    action: m[1],
    actor: m[2],
    credential: m[3],
    digest: m[4],
    seq: Number(m[5]),
    subject: m[6],
    time: m[7],
  };
}

/**
 * An event's fields as its leaf states them, without the checks LogVerifier makes (canonical
 * form, hashes, order): for a reader that runs beside a verifier checking the same leaves, and
 * that discards what it read when the verifier fails. Undefined when the text is not a JSON
 * object with the event's string fields.
 */
export function eventFields(text: string): Record<string, unknown> | undefined {
  let event = canonicalFastPath(text);
  if (!event) {
    try {
      const v: unknown = JSON.parse(text);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
      event = v as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }
  for (const field of STRING_FIELDS) if (typeof event[field] !== 'string') return undefined;
  return event;
}

/** Parses an event and checks that its text is the canonical JSON of what it parses to. */
function parseCanonical(text: string, index: number): Record<string, unknown> {
  const at = { index };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    fail('malformed-event', `event ${index} is not valid JSON: ${(e as Error).message}`, at);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail('malformed-event', `event ${index} is not a JSON object`, at);
  }
  // The leaf is the canonical form's bytes, so any other spelling of the same JSON (key order,
  // spaces, escapes, duplicate keys) would hash differently: a writer bug or an edit.
  let canonical: string | undefined;
  try {
    canonical = canonicalize(value);
  } catch {
    canonical = undefined;
  }
  // `text` is the strict UTF-8 decoding of the bytes, so equal strings mean equal bytes.
  if (canonical === undefined || canonical !== text) {
    fail(
      'non-canonical-event',
      `event ${index} is not in RFC 8785 canonical JSON form: its bytes are not what the log writes`,
      at,
    );
  }
  return value as Record<string, unknown>;
}

/** Checks one event's bytes and returns its leaf hash and fields; throws Stop with the event's index on any fault. */
function checkEvent(
  leaf: LogLeaf,
  index: number,
): { hash: Buffer; event: Record<string, unknown> } {
  const at = { index };
  let text: string;
  try {
    text = leaf.text ?? UTF8.decode(leaf.bytes ?? new Uint8Array());
  } catch {
    fail('malformed-event', `event ${index} is not valid UTF-8`, at);
  }
  const event = canonicalFastPath(text) ?? parseCanonical(text, index);
  const seq = event.seq;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    fail('missing-field', `event ${index} has no seq that is a non-negative integer`, at);
  }
  for (const field of STRING_FIELDS) {
    if (typeof event[field] !== 'string') {
      fail('missing-field', `event ${index} has no ${field} string`, at);
    }
  }
  const time = event.time as string;
  if (!ISO_TIME.test(time) || Number.isNaN(Date.parse(time))) {
    fail('missing-field', `event ${index} has time ${JSON.stringify(time)}, not ISO-8601`, at);
  }
  const digest = event.digest as string;
  if (!isDigest(digest)) {
    fail(
      'missing-field',
      `event ${index} has digest ${JSON.stringify(digest)}, not sha256:<hex>`,
      at,
    );
  }
  if (seq !== index)
    fail('out-of-order', `event ${index} says seq ${seq}: events are out of order`, at);
  // Hashing the text hashes its UTF-8 encoding: the same bytes, without making them first.
  const hash = leaf.bytes ? leafHash(leaf.bytes) : leafHashOfText(text);
  const stored = leaf.storedLeafHash;
  if (
    stored !== undefined &&
    (typeof stored === 'string' ? hash.toString('hex') !== stored : !hash.equals(stored))
  ) {
    fail(
      'leaf-hash-mismatch',
      `event ${index}: stored bytes do not hash to the stored leaf hash`,
      at,
    );
  }
  return { hash, event };
}

/** The size a note claims, read without trusting it, so a bad signature can still be located. */
function claimedSize(note: string): number | undefined {
  try {
    return parseCheckpoint(parseNote(note).text).size;
  } catch {
    return undefined;
  }
}

/** Opens a note with the log key and parses its checkpoint; `what` names it in messages. */
function openCheckpoint(
  note: string,
  log: NoteVerifier,
  what: string,
  unverifiedKind: ViolationKind,
): Checkpoint {
  const size = claimedSize(note);
  const at = size === undefined ? {} : { checkpointSize: size };
  let text: string;
  try {
    text = openNote(note, [log]).text;
  } catch (e) {
    const reason = e instanceof NoteError ? e.message : String(e);
    fail(unverifiedKind, `${what} does not verify with the log key ${log.name}: ${reason}`, at);
  }
  try {
    return parseCheckpoint(text);
  } catch (e) {
    fail('malformed-checkpoint', `${what} is not a valid checkpoint: ${(e as Error).message}`, at);
  }
}

/** Why the incremental verifier stopped early: the first violation, with the check it was in. */
interface Stopped {
  readonly check: CheckName;
  readonly violation: Violation;
}

/**
 * The log verifier, fed one event at a time, so a log of millions of events is checked without
 * holding its events or its tree: the tree is kept as its right edge (one hash per level), and
 * the roots are recorded at the sizes the checkpoints (and the saved checkpoint) claim.
 */
export class LogVerifier {
  private readonly log: NoteVerifier;
  private readonly witnesses: NoteVerifier[];
  private readonly wanted = new Set<number>();
  private readonly roots = new Map<number, Buffer>([[0, emptyRoot()]]);
  /** The right edge of the tree: the hash of the complete subtree at each level, if any. */
  private readonly edge: (Buffer | undefined)[] = [];
  private count = 0;
  private storedHashes = false;
  private stopped: Stopped | undefined;

  constructor(private readonly input: Omit<VerifyInput, 'leaves'>) {
    // Key errors are the caller's mistake, not the log's, so they throw before any check runs.
    this.log = noteVerifier(input.logKey);
    this.witnesses = (input.witnessKeys ?? []).map((k) => noteVerifier(k));
    // The sizes whose roots will be needed, read without trusting the notes yet.
    for (const note of [...input.checkpoints, ...(input.since ? [input.since] : [])]) {
      const size = claimedSize(note);
      if (size !== undefined) this.wanted.add(size);
    }
  }

  /** The next event, in index order; returns its fields once they are checked (else undefined). */
  add(leaf: LogLeaf): Readonly<Record<string, unknown>> | undefined {
    if (this.stopped) return undefined;
    const position = this.count;
    try {
      if (leaf.index > position) {
        const message =
          position === 0
            ? `event 0 is missing: the log starts at ${leaf.index}`
            : leaf.index === position + 1
              ? `event ${position} is missing: the log jumps from ${position - 1} to ${leaf.index}`
              : `events ${position}-${leaf.index - 1} are missing: the log jumps from ${position - 1} to ${leaf.index}`;
        fail('missing-event', message, { index: position });
      }
      if (leaf.index < position) {
        fail(
          'duplicate-event',
          `event ${leaf.index} appears again after event ${position - 1}: indexes repeat or go backwards`,
          { index: leaf.index },
        );
      }
      if (leaf.storedLeafHash) this.storedHashes = true;
      const { hash, event } = checkEvent(leaf, position);
      this.append(hash);
      return event;
    } catch (e) {
      if (!(e instanceof Stop)) throw e;
      this.stopped = { check: 'events', violation: e.violation };
      return undefined;
    }
  }

  private append(hash: Buffer): void {
    let h = hash;
    let level = 0;
    while (this.edge[level]) {
      h = nodeHash(this.edge[level] as Buffer, h);
      this.edge[level] = undefined;
      level++;
    }
    this.edge[level] = h;
    this.count++;
    if (this.wanted.has(this.count)) this.roots.set(this.count, this.rootOfEdge());
  }

  /** The root of the events added so far: the edge folded from its smallest subtree up. */
  private rootOfEdge(): Buffer {
    let acc: Buffer | undefined;
    for (const h of this.edge) if (h) acc = acc ? nodeHash(h, acc) : h;
    return acc ?? emptyRoot();
  }

  /** The root of the first `size` events (a size the verifier was told it would need). */
  private rootAt(size: number): Buffer {
    const root = size === this.count ? this.rootOfEdge() : this.roots.get(size);
    if (!root) throw new Error(`verifier: no root recorded for size ${size}`);
    return root;
  }

  /** Runs the checks after the events and returns the report. */
  finish(): VerifyReport {
    const input = this.input;
    const log = this.log;
    const witnesses = this.witnesses;
    const checks: CheckResult[] = [];
    const warnings: string[] = [];
    const witnessed: WitnessCosignature[] = [];
    const checked = { events: this.count, checkpoints: 0, latestSize: 0 };
    let origin: string | undefined;
    let latestCheckpoint: string | undefined;
    let current: CheckName = 'events';
    const pass = (detail: string, status: CheckResult['status'] = 'ok') => {
      checks.push({ name: current, status, detail });
    };
    const stop = (violation: Violation): VerifyReport => {
      checks.push({ name: current, status: 'fail', detail: violation.message });
      for (const name of CHECK_ORDER.slice(CHECK_ORDER.indexOf(current) + 1)) {
        checks.push({ name, status: 'skip', detail: 'not run after the violation' });
      }
      return {
        ok: false,
        checked,
        violation,
        warnings,
        checks,
        witnessed,
        ...(origin !== undefined && { origin }),
        ...(latestCheckpoint !== undefined && { latestCheckpoint }),
      };
    };
    if (this.stopped) return stop(this.stopped.violation);
    const events = this.count;

    try {
      pass(
        `${plural(events, 'event')}, contiguous from 0, canonical JSON with the required fields, seq equal to index` +
          (this.storedHashes ? ', stored leaf hashes match' : ''),
      );

      // 2. Signatures: every checkpoint is signed by the log key, parses, and names one origin.
      current = 'signatures';
      if (input.checkpoints.length === 0 && events > 0) {
        fail(
          'no-checkpoint',
          `no signed checkpoint covers the log: ${plural(events, 'event')} and no checkpoint`,
        );
      }
      const cps: Checkpoint[] = [];
      for (const [i, note] of input.checkpoints.entries()) {
        const cp = openCheckpoint(
          note,
          log,
          `checkpoint #${i + 1} in stored order`,
          'bad-signature',
        );
        if (origin === undefined) origin = cp.origin;
        else if (cp.origin !== origin) {
          fail(
            'origin-mismatch',
            `checkpoint ${cp.size} names origin ${JSON.stringify(cp.origin)}, the others ${JSON.stringify(origin)}`,
            { checkpointSize: cp.size },
          );
        }
        cps.push(cp);
        checked.checkpoints++;
      }
      const latest = cps.at(-1);
      latestCheckpoint = input.checkpoints.at(-1);
      checked.latestSize = latest?.size ?? 0;
      pass(
        cps.length === 0
          ? 'no checkpoints (the log is empty)'
          : `${plural(cps.length, 'checkpoint')} signed by ${log.name} for origin ${origin}`,
      );

      // 3. Order: a log only grows, so stored checkpoints never shrink.
      current = 'order';
      for (let i = 1; i < cps.length; i++) {
        const prev = cps[i - 1]!;
        const cp = cps[i]!;
        if (cp.size < prev.size) {
          fail(
            'sizes-decrease',
            `checkpoint ${cp.size} is stored after checkpoint ${prev.size}: checkpoint sizes went backwards`,
            { checkpointSize: cp.size },
          );
        }
      }
      pass(cps.length < 2 ? 'fewer than two checkpoints' : 'checkpoint sizes never decrease');

      // 4. Split view: one size, one root, whatever else the events say.
      current = 'split-view';
      const rootBySize = new Map<number, Buffer>();
      for (const cp of cps) {
        const seen = rootBySize.get(cp.size);
        if (seen && !seen.equals(cp.root)) {
          fail(
            'split-view',
            `two different roots signed for size ${cp.size}: ${b64(seen)} and ${b64(cp.root)}`,
            { checkpointSize: cp.size },
          );
        }
        rootBySize.set(cp.size, cp.root);
      }
      pass(`${plural(rootBySize.size, 'distinct size')}, one root each`);

      // 5. Roots: each checkpoint's root is the root of the first `size` events.
      current = 'roots';
      let matched = 0;
      for (const cp of cps) {
        const at = { checkpointSize: cp.size };
        if (cp.size > events) {
          fail(
            'truncated',
            `checkpoint ${cp.size} covers ${plural(cp.size, 'event')} but the log holds only ${events}: ` +
              `${cp.size - events === 1 ? `event ${events} is` : `events ${events}-${cp.size - 1} are`} missing`,
            at,
          );
        }
        const root = this.rootAt(cp.size);
        if (!root.equals(cp.root)) {
          // An earlier checkpoint that matched pins events below its size, which narrows the search.
          fail(
            'root-mismatch',
            `checkpoint ${cp.size} is signed for root ${b64(cp.root)} but the events give root ${b64(root)}: ` +
              `an event in ${matched}-${cp.size - 1} was changed, removed or reordered after it was signed`,
            at,
          );
        }
        matched = cp.size;
      }
      pass(
        cps.length === 0
          ? 'no checkpoints to match'
          : `every checkpoint root equals the root of its first events`,
      );

      // 6. Consistency: every root above was recomputed from one sequence of events, read once in
      // order, so each checkpoint is the same append-only log as the one before it.
      current = 'consistency';
      pass(
        cps.length < 2
          ? 'fewer than two checkpoints'
          : `${plural(cps.length - 1, 'consecutive pair')} consistent (append-only): every root is recomputed from one sequence of events`,
      );

      // 7. Since: the user's saved checkpoint must be a prefix of what the log shows now.
      current = 'since';
      if (input.since === undefined) {
        pass('no saved checkpoint given', 'skip');
      } else {
        const saved = openCheckpoint(input.since, log, 'the saved checkpoint', 'since-unverified');
        const at = { checkpointSize: saved.size };
        if (origin !== undefined && saved.origin !== origin) {
          fail(
            'origin-mismatch',
            `the saved checkpoint is for origin ${JSON.stringify(saved.origin)}, the log's is ${JSON.stringify(origin)}`,
            at,
          );
        }
        const size = latest?.size ?? 0;
        if (!latest && saved.size > 0) {
          fail(
            'rollback',
            `rollback: the log has no checkpoint, but the saved checkpoint has size ${saved.size}`,
            at,
          );
        }
        if (size < saved.size) {
          fail(
            'rollback',
            `rollback: the log's latest checkpoint has size ${size}, smaller than the saved size ${saved.size}`,
            at,
          );
        }
        const latestRoot = latest ? latest.root : emptyRoot();
        // The saved root must be the root of the log's first saved.size events: then the latest
        // checkpoint, whose root was recomputed from the same events, extends it.
        const consistent = this.rootAt(saved.size).equals(saved.root);
        if (!consistent) {
          fail(
            'split-view',
            saved.size === size
              ? `split view: the saved checkpoint and the log's latest both have size ${size} but different roots (saved ${b64(saved.root)}, log ${b64(latestRoot)})`
              : `split view: the saved checkpoint (size ${saved.size}, root ${b64(saved.root)}) is not consistent with the log's latest checkpoint ${size}`,
            at,
          );
        }
        pass(`the log's latest checkpoint ${size} extends the saved checkpoint ${saved.size}`);
      }

      // 8. Witnesses: count, do not judge; the k-of-n policy is the caller's.
      current = 'witnesses';
      if (witnesses.length === 0) {
        pass('no witness keys given', 'skip');
      } else if (!latest || !latestCheckpoint) {
        pass('no checkpoint to be cosigned', 'skip');
      } else {
        const missing: string[] = [];
        for (const w of witnesses) {
          // One witness at a time: openNote rejects the whole note for one bad trusted signature,
          // which would hide the valid cosignatures of the others.
          try {
            const sig = openNote(latestCheckpoint, [w]).verified[0]!;
            witnessed.push({ name: w.name, timestamp: cosignatureTimestamp(sig.signature) ?? 0 });
          } catch (e) {
            const bad = e instanceof NoteError && e.code === 'INVALID_SIGNATURE';
            missing.push(w.name);
            warnings.push(
              bad
                ? `the cosignature by ${w.name} on checkpoint ${latest.size} does not verify`
                : `checkpoint ${latest.size} has no cosignature by ${w.name}`,
            );
          }
        }
        pass(
          `checkpoint ${latest.size} cosigned by ${witnessed.length} of ${witnesses.length} witnesses` +
            (missing.length > 0 ? ` (missing: ${missing.join(', ')})` : ''),
          missing.length > 0 ? 'warn' : 'ok',
        );
      }

      // 9. Coverage: events the latest checkpoint does not yet commit to.
      current = 'coverage';
      const uncovered = events - (latest?.size ?? 0);
      if (uncovered > 0) {
        warnings.push(
          `${plural(uncovered, 'event')} after the latest checkpoint ${uncovered === 1 ? 'is' : 'are'} not yet covered by a signed checkpoint`,
        );
        pass(`${plural(uncovered, 'event')} after checkpoint ${latest?.size ?? 0}`, 'warn');
      } else {
        pass(`every event is covered by checkpoint ${latest?.size ?? 0}`);
      }
    } catch (e) {
      if (!(e instanceof Stop)) throw e;
      return stop(e.violation);
    }
    return {
      ok: true,
      checked,
      warnings,
      checks,
      witnessed,
      ...(origin !== undefined && { origin }),
      ...(latestCheckpoint !== undefined && { latestCheckpoint }),
    };
  }
}

/**
 * Verifies an audit log offline: contiguous, canonical, well-formed events whose Merkle tree
 * matches every checkpoint signed by the log key; checkpoints that only grow and never fork;
 * no rollback or fork since the user's saved checkpoint; and counts witness cosignatures on the
 * latest checkpoint. Stops at the first violation.
 */
export function verifyLog(input: VerifyInput): VerifyReport {
  const { leaves, ...rest } = input;
  const v = new LogVerifier(rest);
  for (const leaf of leaves) v.add(leaf);
  return v.finish();
}

const STATUS_LABEL: Record<CheckResult['status'], string> = {
  ok: 'ok',
  fail: 'FAIL',
  warn: 'warn',
  skip: 'skip',
};

/** The report as a human-readable checklist: one line per check, then warnings, then the violation or the verdict. */
export function formatReport(report: VerifyReport): string {
  const lines = report.checks.map(
    (c) => `${STATUS_LABEL[c.status].padEnd(5)} ${c.name.padEnd(12)} ${c.detail}`,
  );
  for (const w of report.warnings) lines.push(`warning: ${w}`);
  const { events, checkpoints, latestSize } = report.checked;
  lines.push(
    report.violation
      ? `FAIL: ${report.violation.message}`
      : `ok: ${plural(events, 'event')} and ${plural(checkpoints, 'checkpoint')} verified; latest checkpoint size ${latestSize}` +
          (report.witnessed.length > 0
            ? `, cosigned by ${report.witnessed.map((w) => w.name).join(', ')}`
            : ''),
  );
  return lines.join('\n');
}
