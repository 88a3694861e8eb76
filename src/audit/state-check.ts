import { hash } from 'node:crypto';
import type { Alias, Model, Version } from '../core/types.js';
import { canonicalize } from './canonical-json.js';
import { modelContent, subjects, versionContent } from './subjects.js';

/** What the database holds now, for comparison with what the log says it should hold. */
export interface CurrentState {
  models: Model[];
  versions: Version[];
  aliases: Alias[];
}

/** A difference between an event's stored content and its digest, or between the rows and the log. */
export interface StateViolation {
  kind: 'content-digest' | 'unlogged-row' | 'row-differs';
  index?: number;
  message: string;
}

/** What the checker needs of an event: where it is, what its leaf says, and its stored content. */
export interface CheckedEvent {
  /** Index in the log; absent for an event still queued (not yet in the tree). */
  seq?: number;
  action: string;
  subject: string;
  /** The digest the leaf carries (for a queued event, its recorded digest). */
  digest: string;
  content: string;
}

const digestOf = (text: string) => `sha256:${hash('sha256', text, 'hex')}`;

/** Names of the top-level fields that differ between two records. */
function differing(a: object, b: object): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter(
    (k) =>
      canonicalize((a as Record<string, unknown>)[k] ?? null) !==
      canonicalize((b as Record<string, unknown>)[k] ?? null),
  );
}

/**
 * Compares the database with the log, fed one event at a time (a million-event log need not
 * sit in memory): each event's stored content must still hash to the digest its leaf carries,
 * and every model, version and alias row must be what the last event about it recorded. A row
 * written or edited without going through the log is reported with the event it contradicts.
 */
export class StateChecker {
  private readonly last = new Map<string, CheckedEvent>();
  /** The subjects the current rows are about: only their last events are kept. */
  private readonly wanted = new Set<string>();
  private violation: StateViolation | undefined;

  constructor(private readonly current: CurrentState) {
    for (const m of current.models) this.wanted.add(subjects.model(m.name));
    for (const v of current.versions) this.wanted.add(subjects.version(v.model, v.number));
    for (const a of current.aliases) this.wanted.add(subjects.alias(a.model, a.name));
  }

  /** Takes the next event, in log order (queued events last). */
  add(e: CheckedEvent): void {
    if (this.violation) return;
    if (digestOf(e.content) !== e.digest) {
      this.violation = {
        kind: 'content-digest',
        ...(e.seq !== undefined && { index: e.seq }),
        message:
          e.seq !== undefined
            ? `event ${e.seq} (${e.action} ${e.subject}): its stored content does not hash to the digest in its leaf`
            : `a queued event (${e.action} ${e.subject}): its stored content does not hash to its digest`,
      };
      return;
    }
    // Only what the rows are compared with is kept: the content of a subject's last event.
    if (this.wanted.has(e.subject)) this.last.set(e.subject, e);
    // Aliases are few and matter most: for each, where the log last left it, so that one
    // deleted behind the log's back is found too.
    if (e.subject.startsWith('alias:')) {
      const version = (JSON.parse(e.content) as { version?: unknown }).version;
      this.aliasState.set(e.subject, {
        seq: e.seq,
        version: typeof version === 'number' ? version : null,
      });
    }
  }

  private readonly aliasState = new Map<
    string,
    { seq: number | undefined; version: number | null }
  >();

  /** The first violation, comparing the current rows with the last events seen. */
  finish(): StateViolation | undefined {
    if (this.violation) return this.violation;
    const current = this.current;
    const compare = (
      subject: string,
      what: string,
      row: object,
      logged: (content: Record<string, unknown>) => object | undefined,
    ): StateViolation | undefined => {
      const e = this.last.get(subject);
      if (!e)
        return {
          kind: 'unlogged-row',
          message: `${what} is in the database but no event in the log records it`,
        };
      const recorded = logged(JSON.parse(e.content) as Record<string, unknown>);
      if (recorded === undefined || canonicalize(recorded) !== canonicalize(row))
        return {
          kind: 'row-differs',
          ...(e.seq !== undefined && { index: e.seq }),
          message: `${what} differs from its last logged state (${e.seq !== undefined ? `event ${e.seq}` : 'a queued event'}, ${e.action})${recorded ? `: ${differing(recorded, row).join(', ')}` : ''}`,
        };
      return undefined;
    };
    for (const m of current.models) {
      const v = compare(
        subjects.model(m.name),
        `model ${m.name}`,
        modelContent(m),
        (c) => c.model as object,
      );
      if (v) return v;
    }
    for (const ver of current.versions) {
      const v = compare(
        subjects.version(ver.model, ver.number),
        `version ${ver.model}@${ver.number}`,
        versionContent(ver),
        (c) => c.version as object,
      );
      if (v) return v;
    }
    const present = new Set(current.aliases.map((a) => subjects.alias(a.model, a.name)));
    for (const [subject, state] of this.aliasState) {
      if (state.version === null || present.has(subject)) continue;
      const [, model, alias] = subject.split(':');
      return {
        kind: 'row-differs',
        ...(state.seq !== undefined && { index: state.seq }),
        message: `alias ${alias} of ${model} is missing from the database, but the log last set it to version ${state.version} (${state.seq !== undefined ? `event ${state.seq}` : 'a queued event'})`,
      };
    }
    for (const a of current.aliases) {
      const v = compare(
        subjects.alias(a.model, a.name),
        `alias ${a.name} of ${a.model}`,
        { version: a.version },
        (c) => ({ version: c.version }),
      );
      if (v) return v;
    }
    return undefined;
  }
}
