import type { Kysely, RawBuilder } from 'kysely';
import type { DB } from './schema.js';

/** Events read from the database per query. */
export const LOG_PAGE = 5_000;

/** The stored leaf hashes of a page's events, by index. */
export interface LeafHashes {
  get(seq: number): string | undefined;
}

/** One stored event as a page returns it. */
export interface LogPageRow {
  seq: number;
  leaf: string;
  content?: string;
  /** 1 when the event row's columns spell what its leaf says (see verify-database). */
  same?: unknown;
}

/**
 * Reads the stored events page by page, by index range (a deleted event must not end the
 * reading early: pages go on until one past the log's size comes back empty), with their
 * content, a comparison flag and the stored leaf hashes as asked.
 */
export async function readLogPages(
  db: Kysely<DB>,
  size: number,
  want: { content: boolean; hashes: boolean; same?: RawBuilder<unknown> },
  onPage: (page: LogPageRow[], hashes: LeafHashes, from: number) => void | Promise<void>,
): Promise<void> {
  for (let from = 0; ; from += LOG_PAGE) {
    const page = (await db
      .selectFrom('audit_events')
      .select(['seq', 'leaf'])
      .$if(want.content, (q) => q.select('content'))
      .$if(want.same !== undefined, (q) => q.select((want.same as RawBuilder<unknown>).as('same')))
      .where('seq', '>=', from)
      .where('seq', '<', from + LOG_PAGE)
      .orderBy('seq')
      .execute()) as LogPageRow[];
    const hashes = want.hashes ? await leafHashesOf(db, from) : { get: () => undefined };
    await onPage(page, hashes, from);
    if (page.length === 0 && from >= size) break;
  }
}

/** The stored leaf hashes of the page of events that starts at `from`. */
export async function leafHashesOf(db: Kysely<DB>, from: number): Promise<LeafHashes> {
  // By position in the page: a million Map entries cost more than the hashes themselves.
  const byPosition: (string | undefined)[] = [];
  for (const h of await db
    .selectFrom('audit_nodes')
    .select(['idx', 'hash'])
    .where('level', '=', 0)
    .where('idx', '>=', from)
    .where('idx', '<', from + LOG_PAGE)
    .execute())
    byPosition[Number(h.idx) - from] = h.hash;
  return { get: (seq) => byPosition[seq - from] };
}
