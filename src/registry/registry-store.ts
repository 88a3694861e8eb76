import type {
  Actor,
  Alias,
  AliasEvent,
  Dataset,
  LineageInput,
  LineageTarget,
  Model,
  ModelCard,
  Page,
  RiskTier,
  Version,
  VersionFile,
} from '../core/types.js';
import type { NewToken } from '../identity/identity-store.js';

/** Fields of a new model. */
export interface NewModel {
  name: string;
  ownerTeam: string;
  riskTier: RiskTier;
  description: string;
  intendedUse: string;
  tags: string[];
}

/** Editable fields of a model. */
export type ModelPatch = Partial<Omit<NewModel, 'name'>>;

/** Filters on the model list. */
export interface ModelFilter {
  ownerTeam?: string;
  riskTier?: RiskTier;
  tag?: string;
  namePrefix?: string;
}

/** Fields of a new version; files are already in the blob store and validated. */
export interface NewVersion {
  files: VersionFile[];
  digest: string;
  /** Paths bound to file digests (see `layoutDigest`); computed from `files` when absent. */
  layoutDigest?: string;
  sourceUri: string | null;
  author: string;
  card: ModelCard;
  tags: string[];
  description: string;
  lineage: LineageInput[];
}

/** Filters on the version list. */
export interface VersionFilter {
  tag?: string;
  author?: string;
  digest?: string;
}

/** Fields of a new dataset. */
export interface NewDataset {
  name: string;
  uri: string;
  digest: string | null;
  licence: string | null;
  description: string;
}

/** Paging request: an opaque cursor from the previous page and a page size. */
export interface PageRequest {
  cursor?: string;
  limit: number;
}

/** A version's node identity in a lineage traversal. */
export interface VersionRef {
  model: string;
  version: number;
}

/** One edge as the store returns it for traversal. */
export interface StoredEdge {
  from: VersionRef;
  relation: string;
  target: LineageTarget;
}

/** The result of looking up a bearer token's hash. */
export interface TokenRecord {
  tokenId: string;
  identity: string;
  kind: 'user' | 'service-account';
  /** Roles held (built-in: viewer, contributor, evaluator, approver, admin). */
  roles: string[];
  teams: string[];
  /** Actions this token may be used for; absent: whatever its identity may do. */
  scopes?: string[];
  /**
   * When the credential stops working: the token's expiry or its service account's, whichever
   * is sooner; absent: never. Caches check it on every use.
   */
  expiresAt?: string;
}

/** An identity as it is created with its first token. */
export interface NewIdentity {
  name: string;
  kind: 'user' | 'service-account';
  roles?: string[];
  teams?: string[];
}

/**
 * Persistence port of the registry. Implementations make each method atomic and map
 * constraint violations to catalog errors (MODEL_EXISTS, VERSION_IMMUTABLE, ...).
 */
export interface RegistryStore {
  createModel(input: NewModel, actor: Actor): Promise<Model>;
  getModel(name: string): Promise<Model | undefined>;
  updateModel(name: string, patch: ModelPatch, actor: Actor): Promise<Model>;
  listModels(filter: ModelFilter, page: PageRequest): Promise<Page<Model>>;

  /** Registers a version with the next number, its files and lineage edges, in one transaction. */
  createVersion(model: string, input: NewVersion, actor: Actor): Promise<Version>;
  getVersion(model: string, number: number): Promise<Version | undefined>;
  listVersions(model: string, filter: VersionFilter, page: PageRequest): Promise<Page<Version>>;
  /** Changes only the mutable fields of a version: tags and description. */
  updateVersionMeta(
    model: string,
    number: number,
    patch: { tags?: string[]; description?: string },
    actor: Actor,
  ): Promise<Version>;

  /** Points an alias at a version and appends to the alias history, in one transaction. */
  setAlias(model: string, alias: string, version: number, actor: Actor): Promise<Alias>;
  deleteAlias(model: string, alias: string, actor: Actor): Promise<void>;
  getAlias(model: string, alias: string): Promise<Alias | undefined>;
  listAliases(model: string): Promise<Alias[]>;
  /** Alias changes, newest first. */
  aliasHistory(
    model: string,
    filter: { alias?: string },
    page: PageRequest,
  ): Promise<Page<AliasEvent>>;
  /** The last change of each alias (or of one alias) at or before `at`. */
  aliasEventsAt(model: string, at: string, alias?: string): Promise<AliasEvent[]>;

  createDataset(input: NewDataset, actor: Actor): Promise<Dataset>;
  getDataset(name: string): Promise<Dataset | undefined>;
  listDatasets(filter: { namePrefix?: string }, page: PageRequest): Promise<Page<Dataset>>;

  /** Edges leaving the given versions. */
  edgesFrom(versions: VersionRef[]): Promise<StoredEdge[]>;
  /** Edges arriving at the given targets (versions or datasets). */
  edgesTo(targets: LineageTarget[]): Promise<StoredEdge[]>;

  /** Token lookup by SHA-256 hash of the secret; records last use. */
  findToken(hash: string, usedFrom: string | null): Promise<TokenRecord | undefined>;
  /**
   * Creates an identity (if missing, with its roles and teams) and a token for it. With
   * `initial`, only the first call on an empty registry does, of however many servers at once;
   * returns whether the token was created.
   */
  createToken(
    identity: NewIdentity,
    token: Omit<NewToken, 'rotatedFrom'>,
    opts?: { initial?: boolean },
  ): Promise<boolean>;
  countTokens(): Promise<number>;

  /** Cheap round trip used by readiness checks. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
