import type { ColumnType, Generated } from 'kysely';

/** Kysely table types; times are ISO-8601 UTC strings with milliseconds on both engines. */
export interface IdentitiesTable {
  id: Generated<number>;
  kind: 'user' | 'service-account';
  name: string;
  created_at: string;
  owner: string | null;
  purpose: string | null;
  created_by: string | null;
  created_credential: string | null;
  password_hash: string | null;
  expires_at: string | null;
  sso_issuer: string | null;
  sso_subject: string | null;
}

export interface TokensTable {
  id: string;
  identity_id: number;
  token_hash: string;
  name: string;
  created_at: string;
  last_used_at: string | null;
  last_used_from: string | null;
  revoked_at: string | null;
  expires_at: string | null;
  rotated_from: string | null;
  scopes: string | null;
  created_by: string | null;
  created_credential: string | null;
  revoked_by: string | null;
  revoked_credential: string | null;
}

export interface IdentityRolesTable {
  identity_id: number;
  role: string;
  granted_by: string | null;
  granted_credential: string | null;
  granted_at: string | null;
}

export interface TeamMembersTable {
  identity_id: number;
  team: string;
  granted_by: string | null;
  granted_credential: string | null;
  granted_at: string | null;
}

export interface AuditPendingTable {
  id: Generated<number>;
  time: string;
  actor: string;
  credential: string;
  action: string;
  subject: string;
  digest: string;
  content: string;
}

export interface AuditHeadTable {
  id: number;
  size: number;
}

/** A queued event once in the log: its index and its leaf added. */
export interface AuditEventsTable extends Omit<AuditPendingTable, 'id'> {
  seq: number;
  leaf: string;
}

export interface AuditNodesTable {
  level: number;
  idx: number;
  hash: string;
}

export interface AuditCheckpointsTable {
  size: number;
  root: string;
  note: string;
  created_at: string;
}

export interface AuditCosignaturesTable {
  size: number;
  witness: string;
  line: string;
  created_at: string;
}

export interface GatePoliciesTable {
  name: string;
  version: number;
  digest: string;
  document: string;
  source: string;
  published_by: string;
  published_credential: string;
  published_at: string;
}

export interface AuthzPoliciesTable {
  id: string;
  text: string;
  digest: string;
  created_at: string;
  created_by: string;
  created_credential: string;
}

export interface ModelsTable {
  id: Generated<number>;
  name: string;
  owner_team: string;
  risk_tier: string;
  description: string;
  intended_use: string;
  tags: string;
  created_at: string;
  created_by: string;
  created_credential: string;
  updated_at: string;
  updated_by: string;
}

export interface VersionsTable {
  id: Generated<number>;
  model_id: number;
  number: number;
  digest: string;
  /** SHA-256 of the sha256sum-style manifest of paths and file digests (migration 0014). */
  layout_digest: ColumnType<string, string | undefined, never>;
  total_size: number;
  file_count: number;
  source_uri: string | null;
  author: string;
  created_credential: string;
  card_markdown: string;
  card_fields: string;
  tags: string;
  description: string;
  created_at: string;
  updated_at: string;
  updated_by: string;
}

export interface VersionFilesTable {
  version_id: number;
  path: string;
  size: number;
  sha256: string;
}

export interface AliasesTable {
  model_id: number;
  name: string;
  version_id: number;
  updated_at: string;
  updated_by: string;
  decision_id: number | null;
}

export interface AliasEventsTable {
  id: Generated<number>;
  model_id: number;
  alias: string;
  from_version: number | null;
  to_version: number | null;
  actor: string;
  credential_id: string;
  at: string;
}

export interface DatasetsTable {
  id: Generated<number>;
  name: string;
  uri: string;
  digest: string | null;
  licence: string | null;
  description: string;
  created_at: string;
  created_by: string;
}

export interface LineageEdgesTable {
  id: Generated<number>;
  version_id: number;
  relation: string;
  target_kind: string;
  target_dataset_id: number | null;
  target_version_id: number | null;
  target_uri: string | null;
  created_at: string;
}

export interface EvaluationsTable {
  id: string;
  version_id: number;
  evaluator_id: string;
  evaluator_version: string;
  config: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  requested_by: string;
  credential_id: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  progress: number;
  metrics: string;
  error: string | null;
  attempts: number;
  lease_owner: string | null;
  lease_expires_at: string | null;
}

export interface FindingsTable {
  id: Generated<number>;
  evaluation_id: string;
  version_id: number;
  rule_id: string;
  severity: string;
  title: string;
  file: string;
  member: string | null;
  byte_offset: number | null;
  evidence: string;
  refs: string;
  status: string;
  created_at: string;
}

export interface GateDecisionsTable {
  id: Generated<number>;
  model_id: number;
  version: number;
  digest: string;
  alias: string;
  kind: string;
  request_id: number | null;
  policies: string;
  engine: string;
  facts: string;
  facts_digest: string;
  outcome: string;
  waivers: string;
  moved: number;
  decided_by: string;
  credential: string;
  at: string;
}

export interface PromotionRequestsTable {
  id: Generated<number>;
  model_id: number;
  version: number;
  alias: string;
  requested_by: string;
  credential: string;
  requested_at: string;
  state: string;
  closed_at: string | null;
  decision_id: number | null;
}

export interface PromotionReviewsTable {
  id: Generated<number>;
  request_id: number;
  reviewer: string;
  roles: string;
  teams: string;
  decision: string;
  comment: string;
  credential: string;
  at: string;
}

/** The withdrawal of a rejection by its approver, or its override by an admin. */
export interface ReviewWithdrawalsTable {
  id: Generated<number>;
  review_id: number;
  withdrawn_by: string;
  credential: string;
  comment: string;
  /** 1 when an admin withdrew another approver's rejection. */
  override: number;
  at: string;
}

export interface WaiversTable {
  id: Generated<number>;
  model_id: number;
  version: number | null;
  finding_rule: string | null;
  rule: string | null;
  justification: string;
  approved_by: string;
  credential: string;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
  revoked_by: string | null;
  revoked_credential: string | null;
}

export interface AttestationsTable {
  id: Generated<number>;
  model_id: number;
  version: number;
  kind: string;
  ref: string;
  predicate_type: string;
  envelope: string;
  envelope_digest: string;
  created_at: string;
}

/** The whole schema as Kysely sees it. */
export interface EvaluationCheckpointsTable {
  evaluation_id: string;
  key: string;
  /** JSON. */
  data: string;
  created_at: string;
}

/** A value the servers sharing a database create once and agree on (e.g. the cursor key). */
export interface ServerSettingsTable {
  name: string;
  value: string;
  created_at: string;
}

export interface DB {
  identities: IdentitiesTable;
  tokens: TokensTable;
  identity_roles: IdentityRolesTable;
  team_members: TeamMembersTable;
  authz_policies: AuthzPoliciesTable;
  gate_policies: GatePoliciesTable;
  audit_pending: AuditPendingTable;
  audit_head: AuditHeadTable;
  audit_events: AuditEventsTable;
  audit_nodes: AuditNodesTable;
  audit_checkpoints: AuditCheckpointsTable;
  audit_cosignatures: AuditCosignaturesTable;
  models: ModelsTable;
  versions: VersionsTable;
  version_files: VersionFilesTable;
  aliases: AliasesTable;
  alias_events: AliasEventsTable;
  datasets: DatasetsTable;
  lineage_edges: LineageEdgesTable;
  evaluations: EvaluationsTable;
  findings: FindingsTable;
  gate_decisions: GateDecisionsTable;
  promotion_requests: PromotionRequestsTable;
  promotion_reviews: PromotionReviewsTable;
  review_withdrawals: ReviewWithdrawalsTable;
  waivers: WaiversTable;
  attestations: AttestationsTable;
  evaluation_checkpoints: EvaluationCheckpointsTable;
  server_settings: ServerSettingsTable;
}
