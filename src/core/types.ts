/** EU AI Act risk tiers, lowest to highest. */
export const RISK_TIERS = ['minimal', 'limited', 'high', 'unacceptable'] as const;
/** A model's EU AI Act risk tier. */
export type RiskTier = (typeof RISK_TIERS)[number];

/** Who performed an action: the identity's name and the id of the credential it used. */
export interface Actor {
  readonly identity: string;
  readonly credentialId: string;
}

/** A named registry entry that owns versions and aliases. */
export interface Model {
  name: string;
  ownerTeam: string;
  riskTier: RiskTier;
  description: string;
  intendedUse: string;
  tags: string[];
  createdAt: string;
  createdBy: string;
  updatedAt: string;
}

/** One file of a version: relative POSIX path, byte size and SHA-256 digest (`sha256:<hex>`). */
export interface VersionFile {
  path: string;
  size: number;
  digest: string;
}

/** A model card: free Markdown plus structured fields (e.g. CycloneDX modelCard sections). */
export interface ModelCard {
  markdown: string;
  fields: Record<string, unknown>;
}

/** An immutable, digest-addressed version of a model. */
export interface Version {
  model: string;
  number: number;
  digest: string;
  /**
   * SHA-256 of the manifest of paths and file digests: names the layout, which `digest` (the
   * OpenSSF model-signing subject, bytes in path order) does not.
   */
  layoutDigest: string;
  size: number;
  fileCount: number;
  sourceUri: string | null;
  author: string;
  card: ModelCard;
  tags: string[];
  description: string;
  createdAt: string;
  /** Present when the version is fetched on its own, absent in lists. */
  files?: VersionFile[];
}

/** A movable name on a model pointing at one version. */
export interface Alias {
  model: string;
  name: string;
  version: number;
  updatedAt: string;
  updatedBy: string;
}

/** One change of an alias: set, moved or deleted. `toVersion` is null for a delete. */
export interface AliasEvent {
  id: number;
  model: string;
  alias: string;
  fromVersion: number | null;
  toVersion: number | null;
  actor: string;
  credentialId: string;
  at: string;
}

/** A dataset record that versions can be linked to. */
export interface Dataset {
  name: string;
  uri: string;
  digest: string | null;
  licence: string | null;
  description: string;
  createdAt: string;
  createdBy: string;
}

/** Where a lineage edge points. */
export type LineageTarget =
  | { kind: 'dataset'; dataset: string }
  | { kind: 'version'; model: string; version: number }
  | { kind: 'run'; uri: string }
  | { kind: 'code'; uri: string };

/** The kinds of lineage targets. */
export const LINEAGE_KINDS = ['dataset', 'version', 'run', 'code'] as const;

/** The relation used when a push names a target without one. */
export const DEFAULT_RELATION: Record<LineageTarget['kind'], string> = {
  dataset: 'trainedOn',
  version: 'fineTunedFrom',
  run: 'producedBy',
  code: 'builtFrom',
};

/** A lineage edge as given when a version is registered. */
export interface LineageInput {
  relation: string;
  target: LineageTarget;
}

/** A lineage edge from a version, with the depth at which a traversal found it. */
export interface LineageEdge {
  from: { model: string; version: number };
  relation: string;
  target: LineageTarget;
  depth: number;
}

/** A page of a list and the cursor of the next page, or null on the last page. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
