import { createHash } from 'node:crypto';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { ModelgateError } from '../../core/errors.js';
import type { Actor } from '../../core/types.js';
import { Authorizer, PolicyValidationError } from './authorizer.js';

/** An operator's Cedar policy added through the API. */
export interface StoredPolicy {
  id: string;
  text: string;
  /** `sha256:<hex>` of the text. */
  digest: string;
  createdAt: string;
  createdBy: string;
}

/** Persistence of the policies operators add through the API. */
export interface AuthzPolicyStore {
  list(): Promise<StoredPolicy[]>;
  /** Creates or replaces the policy with this id. */
  put(policy: { id: string; text: string; digest: string }, by: Actor): Promise<StoredPolicy>;
  /** Throws POLICY_NOT_FOUND. */
  remove(id: string, by: Actor): Promise<void>;
}

/** Ids of API policies: short, and apart from the built-in `role-*` ones by their prefix. */
export const POLICY_ID_PATTERN = '^[a-z][a-z0-9-]{0,62}$';

const digestOf = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

/**
 * The policies in force: the base set (built-in roles plus the operator's policy files) and
 * the policies added through the API. A change is validated with the whole set before it is
 * stored, so an invalid policy never takes effect. Other server processes on the same database
 * pick a change up within `refreshMs`: the stored set is compared before a request is
 * authorized when the last look is older than that.
 */
export class PolicySet {
  private authorizer: Authorizer;
  private storedDigest = '';
  private checkedAt = 0;

  private constructor(
    private readonly base: Readonly<Record<string, string>>,
    private readonly store: AuthzPolicyStore | undefined,
    private readonly refreshMs: number,
    fixed?: Authorizer,
  ) {
    this.authorizer = fixed ?? new Authorizer(base);
  }

  /** A set that never changes (no API policies): the given authorizer, always. */
  static fixed(authorizer: Authorizer): PolicySet {
    return new PolicySet(authorizer.policies, undefined, Number.POSITIVE_INFINITY, authorizer);
  }

  /** Loads the stored policies on top of `base`; throws PolicyValidationError naming the bad ones. */
  static async open(
    base: Readonly<Record<string, string>>,
    store: AuthzPolicyStore,
    refreshMs = 2000,
  ): Promise<PolicySet> {
    const set = new PolicySet(base, store, refreshMs);
    await set.reload(await store.list());
    return set;
  }

  /** The authorizer for the policies in force now. */
  current(): Authorizer {
    return this.authorizer;
  }

  /** Reloads from the store when the last look is older than `refreshMs`. */
  async refreshIfStale(): Promise<void> {
    if (!this.store || Date.now() - this.checkedAt < this.refreshMs) return;
    try {
      await this.reload(await this.store.list());
    } catch (e) {
      // The stored set no longer validates here (another process with a newer schema stored a
      // policy this one cannot read, say): keep deciding with the last set that validated, and
      // say so, rather than failing requests. At start, an invalid set still stops the server.
      if (!(e instanceof PolicyValidationError)) throw e;
      this.onStale?.(e);
    }
  }

  /** Called when a refresh found a stored set that does not validate (the last good one stays). */
  onStale: ((e: PolicyValidationError) => void) | undefined;

  private async reload(stored: StoredPolicy[]): Promise<void> {
    this.checkedAt = Date.now();
    const digest = digestOf(stored.map((p) => `${p.id} ${p.digest}`).join('\n'));
    if (digest === this.storedDigest) return;
    // Remembered before building: a set that fails is not tried again until it changes.
    this.storedDigest = digest;
    this.authorizer = new Authorizer(this.combine(stored));
  }

  private combine(stored: { id: string; text: string }[]): Record<string, string> {
    const all: Record<string, string> = { ...this.base };
    for (const p of stored) all[p.id] = p.text;
    return all;
  }

  /** The API policies, newest state from the store. */
  async list(): Promise<StoredPolicy[]> {
    return this.store ? this.store.list() : [];
  }

  /**
   * Adds or replaces one API policy after validating the whole set with it; throws
   * POLICY_INVALID (nothing stored) with the validator's messages.
   */
  async put(
    id: string,
    text: string,
    by: Actor,
    guard?: (next: Authorizer) => Promise<string | undefined>,
  ): Promise<StoredPolicy> {
    if (!this.store)
      throw new ModelgateError('POLICY_INVALID', 'this server takes no policies through the API');
    if (this.base[id] !== undefined)
      throw new ModelgateError(
        'POLICY_INVALID',
        `policy id ${id} is a built-in or file policy; choose another id`,
      );
    const parts = cedar.policySetTextToParts(text);
    if (parts.type !== 'success')
      throw new ModelgateError(
        'POLICY_INVALID',
        `the policy does not parse: ${parts.errors.map((e) => e.message).join('; ')}`,
      );
    if (parts.policies.length !== 1 || parts.policy_templates.length > 0)
      throw new ModelgateError(
        'POLICY_INVALID',
        `one policy per id: the text holds ${parts.policies.length} policies and ${parts.policy_templates.length} templates`,
      );
    const stored = (await this.store.list()).filter((p) => p.id !== id);
    let next: Authorizer;
    try {
      next = new Authorizer(this.combine([...stored, { id, text }]));
    } catch (e) {
      if (e instanceof PolicyValidationError)
        throw new ModelgateError('POLICY_INVALID', e.message, { problems: e.problems });
      throw e;
    }
    const refused = await guard?.(next);
    if (refused) throw new ModelgateError('POLICY_INVALID', refused);
    const saved = await this.store.put({ id, text, digest: digestOf(text) }, by);
    this.authorizer = next;
    this.checkedAt = 0;
    return saved;
  }

  /** Removes one API policy; throws POLICY_NOT_FOUND. */
  async remove(
    id: string,
    by: Actor,
    guard?: (next: Authorizer) => Promise<string | undefined>,
  ): Promise<void> {
    if (!this.store) throw new ModelgateError('POLICY_NOT_FOUND', `no API policy ${id}`);
    const rest = (await this.store.list()).filter((p) => p.id !== id);
    const refused = await guard?.(new Authorizer(this.combine(rest)));
    if (refused) throw new ModelgateError('POLICY_INVALID', refused);
    await this.store.remove(id, by);
    this.checkedAt = 0;
    await this.refreshIfStale();
  }
}
