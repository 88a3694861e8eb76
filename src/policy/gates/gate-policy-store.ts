import type { Actor } from '../../core/types.js';
import type { PolicyDocument } from './policy-document.js';

/** A published, immutable version of a gate policy. */
export interface PublishedPolicy {
  name: string;
  version: number;
  digest: string;
  document: PolicyDocument;
  /** The text as it was published (YAML or JSON). */
  source: string;
  publishedBy: string;
  publishedAt: string;
}

/** Persistence of gate policy versions. */
export interface GatePolicyStore {
  /**
   * Publishes a compiled document: a new version when its digest differs from every version
   * of that name, else the existing version (`created: false`). Records the audit event.
   */
  publish(
    p: { name: string; digest: string; document: PolicyDocument; source: string },
    by: Actor,
  ): Promise<PublishedPolicy & { created: boolean }>;
  /** The latest version of every policy, by name. */
  list(): Promise<PublishedPolicy[]>;
  /** Every version of one policy, oldest first; empty when there is none. */
  versions(name: string): Promise<PublishedPolicy[]>;
}
