import { createHash } from 'node:crypto';
import type { Alias, Model, Version } from '../core/types.js';
import type { StoredEvent } from './audit-log.js';
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

const digestOf = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

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
 * Checks that each event's stored content still hashes to the digest its leaf carries, and
 * that every model, version and alias row in the database is what the last event about it
 * recorded: a row written or edited without going through the log is reported with the
 * event it contradicts. Returns the first violation, or undefined.
 */
export function checkState(
  events: readonly StoredEvent[],
  current: CurrentState,
): StateViolation | undefined {
  const last = new Map<string, StoredEvent>();
  for (const e of events) {
    if (digestOf(e.content) !== e.digest)
      return {
        kind: 'content-digest',
        index: e.seq,
        message: `event ${e.seq} (${e.action} ${e.subject}): its stored content does not hash to the digest in its leaf`,
      };
    last.set(e.subject, e);
  }
  const compare = (
    subject: string,
    what: string,
    row: object,
    logged: (content: Record<string, unknown>) => object | undefined,
  ): StateViolation | undefined => {
    const e = last.get(subject);
    if (!e)
      return {
        kind: 'unlogged-row',
        message: `${what} is in the database but no event in the log records it`,
      };
    const recorded = logged(JSON.parse(e.content) as Record<string, unknown>);
    if (recorded === undefined || canonicalize(recorded) !== canonicalize(row))
      return {
        kind: 'row-differs',
        index: e.seq,
        message: `${what} differs from its last logged state (event ${e.seq}, ${e.action})${recorded ? `: ${differing(recorded, row).join(', ')}` : ''}`,
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
