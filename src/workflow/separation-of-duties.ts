/**
 * Separation of duties by person. A service account acts for whoever owns it, so the owner of
 * an account that authored, requested or evaluated a version took part in that work as much
 * as the account did; and an account is no more independent than its owner. Two identities
 * are the same party when their owner chains (the identity, its owner, that owner's owner...)
 * meet.
 */

/** The owner of a service account, or null for a person or an account without one. */
export type OwnerOf = (identity: string) => string | null | undefined;

/** One way of having taken part in a version's work, and who did. */
export interface Party {
  /** How a person reads it: `the author of fraud@3`, `the requester of promotion request 7`. */
  role: string;
  identities: readonly string[];
}

/** Longest owner chain followed: ownership cycles and very deep chains stop here. */
export const MAX_OWNER_DEPTH = 16;

/** The identity followed by its owners, nearest first (cycles cut). */
export function ownerChain(identity: string, ownerOf: OwnerOf): string[] {
  const chain = [identity];
  let at = identity;
  for (let i = 0; i < MAX_OWNER_DEPTH; i++) {
    const next = ownerOf(at);
    if (!next || chain.includes(next)) break;
    chain.push(next);
    at = next;
  }
  return chain;
}

/** A role `who` cannot act in, with the identity through which the conflict runs. */
export interface Conflict {
  role: string;
  through: string;
}

/**
 * The roles in which `who`, or someone on its owner chain, took part: empty when `who` is
 * independent of every party. Each conflict names the party identity it runs through, so a
 * refusal can say "ci-bot, owned by alice".
 */
export function conflictsOf(who: string, parties: readonly Party[], ownerOf: OwnerOf): Conflict[] {
  const mine = new Set(ownerChain(who, ownerOf));
  const out: Conflict[] = [];
  for (const p of parties) {
    const hit = p.identities.find((id) => ownerChain(id, ownerOf).some((x) => mine.has(x)));
    if (hit !== undefined) out.push({ role: p.role, through: hit });
  }
  return out;
}

/** One sentence for a refusal: `bob cannot approve ...: bob is the author of m@1 (through ci)`. */
export function describeConflicts(who: string, conflicts: readonly Conflict[]): string {
  return conflicts
    .map((c) =>
      c.through === who ? c.role : `${c.role} (through ${c.through}: one owns the other)`,
    )
    .join(' and ');
}
