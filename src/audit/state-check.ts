import { hash } from 'node:crypto';
import { canonicalize } from './canonical-json.js';

/** One governed row as the checker compares it: column name to value, references as natural keys. */
export type RowState = Record<string, unknown>;

/** What the checker knows of an event besides its content: the fields of its leaf. */
export interface EventFacts {
  /** Index in the log; absent for an event still queued (not yet in the tree). */
  seq?: number;
  time: string;
  actor: string;
  credential: string;
  action: string;
  subject: string;
}

/** A row's logged state after an event: `null` when the event ended the record (deleted it). */
export interface LoggedChange {
  key: string;
  state: RowState | null;
}

/**
 * One governed table, declared once: which columns are compared, which are deliberately not
 * (each with why), which events change its rows and what state they leave each row in. Rows
 * are read by the storage layer (`GovernedTableReader`), so this stays free of queries.
 */
export interface GovernedTable {
  readonly table: string;
  /** What a row is, for messages: `waiver`, `role grant`. */
  readonly label: string;
  /** Columns compared with the logged state (references by the natural key they resolve to). */
  readonly checked: readonly string[];
  /** Columns not compared, each with the reason; every other column of the table is checked. */
  readonly unchecked: Readonly<Record<string, string>>;
  /** The actions whose events can change this table's rows. */
  readonly actions: readonly string[];
  /**
   * The rows an event leaves, given its leaf fields and parsed content; `prev` is the logged
   * state so far of a row the database holds (undefined for others: only their being alive is
   * kept, so a million-event log does not sit in memory).
   */
  logged(
    e: EventFacts,
    content: Record<string, unknown>,
    prev: (key: string) => RowState | undefined,
  ): LoggedChange[];
  /**
   * A fast path for tables whose events each restate the whole record (models, versions): the
   * row's key comes from the leaf, no event ends a record, and a state depends on earlier events
   * only through `sticky` (what an event fixes for good, such as the creating credential). The
   * checker then parses only the last event of each row it holds, and none of the others.
   */
  readonly lazy?: {
    keyOf(e: EventFacts): string;
    sticky?(e: EventFacts): RowState | undefined;
  };
}

/** A difference between an event's stored content and its digest, or between the rows and the log. */
export interface StateViolation {
  kind: 'content-digest' | 'unlogged-row' | 'row-differs' | 'missing-row' | 'event-column';
  /** The table and the row's key, when the violation is about a row. */
  table?: string;
  row?: string;
  index?: number;
  message: string;
}

/** What the checker needs of an event: where it is, what its leaf says, and its stored content. */
export interface CheckedEvent extends EventFacts {
  /** The digest the leaf carries (for a queued event, its recorded digest). */
  digest: string;
  content: string;
}

/** An event's content as an object (anything else reads as an empty one). */
function contentOf(e: CheckedEvent): Record<string, unknown> {
  const c = JSON.parse(e.content) as unknown;
  return (typeof c === 'object' && c !== null ? c : {}) as Record<string, unknown>;
}

const digestOf = (text: string) => `sha256:${hash('sha256', text, 'hex')}`;
const same = (a: unknown, b: unknown) => {
  const x = a ?? null;
  const y = b ?? null;
  // Most columns are strings or numbers: compared as they are, without serialising them.
  if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null) return x === y;
  try {
    return canonicalize(a ?? null) === canonicalize(b ?? null);
  } catch {
    // A value with no JSON form (a NaN read from an edited column) equals nothing.
    return false;
  }
};
const where = (seq: number | undefined) => (seq !== undefined ? `event ${seq}` : 'a queued event');

interface Logged {
  state: RowState | null;
  seq: number | undefined;
  action: string;
}

/**
 * Compares the database's governed rows with the log, fed one event at a time (a
 * million-event log need not sit in memory): each event's stored content must still hash to
 * the digest its leaf carries; every row must equal the state the last event about it left
 * (`row-differs`); a row no event records, or one the log deleted, is `unlogged-row`; a record
 * the log leaves alive without its row is `missing-row`. Full logged states are kept only for
 * rows the database holds; for the others only that they are alive.
 */
export class StateChecker {
  private readonly byAction = new Map<string, GovernedTable[]>();
  /** Per table: the logged state of each row the database holds. */
  private readonly logged = new Map<string, Map<string, Logged>>();
  /** Per table: records the log leaves alive that the database does not hold, with the event. */
  private readonly alive = new Map<string, Map<string, number | undefined>>();
  /** Per lazy table: the last event of each row it holds, parsed at the end. */
  private readonly pending = new Map<string, Map<string, CheckedEvent>>();
  /** Per lazy table: what earlier events fixed for good, by row. */
  private readonly sticky = new Map<string, Map<string, RowState>>();
  private violation: StateViolation | undefined;

  constructor(
    private readonly tables: readonly GovernedTable[],
    private readonly rows: ReadonlyMap<string, ReadonlyMap<string, RowState>>,
  ) {
    for (const t of tables) {
      this.logged.set(t.table, new Map());
      this.alive.set(t.table, new Map());
      this.pending.set(t.table, new Map());
      this.sticky.set(t.table, new Map());
      for (const a of t.actions) this.byAction.set(a, [...(this.byAction.get(a) ?? []), t]);
    }
  }

  /** Takes the next event, in log order (queued events last). */
  add(e: CheckedEvent): void {
    if (this.violation) return;
    if (digestOf(e.content) !== e.digest) {
      this.violation = {
        kind: 'content-digest',
        table: 'audit_events',
        ...(e.seq !== undefined && { index: e.seq, row: `seq ${e.seq}` }),
        message: `${e.seq !== undefined ? `audit_events row seq ${e.seq}` : 'a queued event'} (${e.action} ${e.subject}): its stored content does not hash to the digest in its leaf`,
      };
      return;
    }
    const tables = this.byAction.get(e.action);
    if (!tables) return;
    let parsed: Record<string, unknown> | undefined;
    for (const t of tables) {
      const logged = this.logged.get(t.table) as Map<string, Logged>;
      const alive = this.alive.get(t.table) as Map<string, number | undefined>;
      const held = this.rows.get(t.table);
      if (t.lazy) {
        const key = t.lazy.keyOf(e);
        if (!held?.has(key)) {
          alive.set(key, e.seq);
          continue;
        }
        const fixed = t.lazy.sticky?.(e);
        const sticky = this.sticky.get(t.table) as Map<string, RowState>;
        if (fixed) sticky.set(key, { ...sticky.get(key), ...fixed });
        (this.pending.get(t.table) as Map<string, CheckedEvent>).set(key, e);
        continue;
      }
      parsed ??= contentOf(e);
      const c = parsed;
      const prev = (key: string) => logged.get(key)?.state ?? undefined;
      for (const { key, state } of t.logged(e, c, prev)) {
        if (held?.has(key)) logged.set(key, { state, seq: e.seq, action: e.action });
        else if (state === null) alive.delete(key);
        else alive.set(key, e.seq);
      }
    }
  }

  /** Notes a violation found outside the checker (an event column that contradicts its leaf). */
  report(v: StateViolation): void {
    this.violation ??= v;
  }

  /** Every violation, comparing the current rows with the last events seen (the first one alone if an event was bad). */
  finishAll(): StateViolation[] {
    if (this.violation) return [this.violation];
    const out: StateViolation[] = [];
    for (const t of this.tables) {
      const logged = this.logged.get(t.table) as Map<string, Logged>;
      // The lazy tables' last events, parsed now: one per row.
      const sticky = this.sticky.get(t.table) as Map<string, RowState>;
      for (const [key, e] of this.pending.get(t.table) ?? []) {
        const changes = t.logged(e, contentOf(e), (k) => sticky.get(k));
        const mine = changes.find((c) => c.key === key);
        if (mine) logged.set(key, { state: mine.state, seq: e.seq, action: e.action });
      }
      for (const [key, row] of this.rows.get(t.table) ?? []) {
        const l = logged.get(key);
        const at = { table: t.table, row: key };
        const name = `${t.table} row ${key} (${t.label})`;
        if (!l) {
          out.push({
            kind: 'unlogged-row',
            ...at,
            message: `${name} is in the database but no event in the log records it`,
          });
          continue;
        }
        if (l.state === null) {
          out.push({
            kind: 'unlogged-row',
            ...at,
            ...(l.seq !== undefined && { index: l.seq }),
            message: `${name} is in the database, but the log ended it (${where(l.seq)}, ${l.action})`,
          });
          continue;
        }
        const state = l.state;
        const differs = t.checked.filter((col) => !same(state[col], row[col]));
        if (differs.length > 0)
          out.push({
            kind: 'row-differs',
            ...at,
            ...(l.seq !== undefined && { index: l.seq }),
            message: `${name} differs from its last logged state (${where(l.seq)}, ${l.action}): ${differs.join(', ')}`,
          });
      }
      for (const [key, seq] of this.alive.get(t.table) ?? [])
        out.push({
          kind: 'missing-row',
          table: t.table,
          row: key,
          ...(seq !== undefined && { index: seq }),
          message: `${t.table} row ${key} (${t.label}) is missing from the database, but the log records it (${where(seq)})`,
        });
    }
    return out;
  }

  /** The first violation, or undefined when the database matches the log. */
  finish(): StateViolation | undefined {
    return this.finishAll()[0];
  }
}
