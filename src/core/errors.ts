/** One entry of the error catalog: a stable code, its HTTP status and what it means. */
export interface ErrorSpec {
  readonly status: number;
  readonly description: string;
}

/**
 * The error catalog. Codes are stable: clients and scripts match on them, so a code is never
 * renamed or reused; new codes are added at the end of their group. `docs/errors.md` is
 * generated from this table (`npm run docs:errors`) and a test keeps the two in step.
 */
export const ERROR_CATALOG = {
  // Request shape
  BAD_REQUEST: { status: 400, description: 'The request is malformed.' },
  VALIDATION_FAILED: {
    status: 400,
    description:
      'The request body, query or path does not match the schema: a wrong type, an unknown field, a missing field or a value out of range.',
  },
  INVALID_JSON: { status: 400, description: 'The request body is not valid JSON.' },
  INVALID_NAME: {
    status: 400,
    description: 'A model, alias, dataset or tag name breaks the naming rules (docs/names.md).',
  },
  INVALID_PATH: {
    status: 400,
    description:
      'A file path in a version is not a clean relative POSIX path (absolute, `..`, empty or `.` segments, backslashes, NUL, control or bidirectional formatting characters, not in Unicode NFC, too long).',
  },
  INVALID_DIGEST: {
    status: 400,
    description: 'A digest is not of the form `sha256:` followed by 64 lowercase hex digits.',
  },
  INVALID_CURSOR: {
    status: 400,
    description:
      'A pagination cursor was not produced by this registry for this list: its signature does not match (forged or changed) or it belongs to another list.',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    description: 'The body has a content type this route does not accept.',
  },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    description: 'The body or upload exceeds the configured size limit.',
  },
  // Authentication
  UNAUTHENTICATED: {
    status: 401,
    description: 'No bearer token, or a token that is unknown, malformed, expired or revoked.',
  },
  RATE_LIMITED: {
    status: 429,
    description:
      "Too many failed authentication attempts from this address (or, for passwords, for this identity), or too many evidence exports by this identity (MODELGATE_EXPORTS_PER_HOUR); wait the seconds given in Retry-After. A valid token is never refused for others' failures.",
  },
  // Authorization
  FORBIDDEN: {
    status: 403,
    description:
      'The identity may not do this. The message names the policy that decided (or says none permits it).',
  },
  TOKEN_WIDENING: {
    status: 403,
    description:
      'A scoped or expiring token asked to issue or rotate into a token with scopes it lacks or a later expiry than its own: a credential never grows.',
  },
  // Not found
  NOT_FOUND: { status: 404, description: 'No such route.' },
  MODEL_NOT_FOUND: { status: 404, description: 'No model has this name.' },
  VERSION_NOT_FOUND: { status: 404, description: 'The model has no such version or alias.' },
  ALIAS_NOT_FOUND: { status: 404, description: 'The model has no alias of this name.' },
  DATASET_NOT_FOUND: { status: 404, description: 'No dataset has this name.' },
  EVALUATOR_NOT_FOUND: {
    status: 404,
    description: 'This server has no evaluator with that id (GET /api/v1/evaluators).',
  },
  EVALUATION_NOT_FOUND: { status: 404, description: 'No evaluation has this id.' },
  IDENTITY_NOT_FOUND: { status: 404, description: 'No user or service account has this name.' },
  GRANT_NOT_FOUND: {
    status: 404,
    description: 'The identity does not have the role or team membership being removed.',
  },
  TEAM_NOT_FOUND: { status: 404, description: 'No identity is a member of a team of this name.' },
  TOKEN_NOT_FOUND: {
    status: 404,
    description: 'No token has this id (or it belongs to another identity).',
  },
  BLOB_NOT_FOUND: {
    status: 404,
    description: 'No blob with this digest has been uploaded to the blob store.',
  },
  // Conflicts
  MODEL_EXISTS: { status: 409, description: 'A model with this name already exists.' },
  DATASET_EXISTS: { status: 409, description: 'A dataset with this name already exists.' },
  IDENTITY_EXISTS: {
    status: 409,
    description: 'A user or service account with this name already exists.',
  },
  LAST_ADMIN: {
    status: 409,
    description:
      'The change would leave no identity with the admin role; grant admin to another identity first.',
  },
  POLICY_INVALID: {
    status: 400,
    description:
      'The Cedar policy does not parse or does not validate against the authorization schema; nothing was stored.',
  },
  AUDIT_RANGE: {
    status: 400,
    description:
      'The event index or tree size is outside the audit log; ask within its current size.',
  },
  COSIGNATURE_REFUSED: {
    status: 400,
    description:
      'The note is not a checkpoint this log signed, or carries no valid cosignature of a configured witness (MODELGATE_WITNESS_KEYS).',
  },
  EVIDENCE_INCOMPLETE: {
    status: 409,
    description:
      'The audit log records an attestation about this version whose row is missing from the database (deleted behind the log): no bundle is exported without it. Run `modelgate audit verify`.',
  },
  GATE_POLICY_INVALID: {
    status: 400,
    description:
      'The gate policy document is malformed, or an expression names a fact that does not exist or has a type error; every problem is listed with its path.',
  },
  GATE_POLICY_NOT_FOUND: {
    status: 404,
    description: 'No gate policy (or no such version of it) has this name.',
  },
  POLICY_NOT_FOUND: { status: 404, description: 'No operator policy has this id.' },
  VERSION_IMMUTABLE: {
    status: 409,
    description:
      "A registered version's files, sizes and digests never change; only its tags and description can be edited.",
  },
  BLOB_MISMATCH: {
    status: 409,
    description:
      'A blob does not match what was declared: the uploaded bytes hash to another digest, or a file size differs from the stored blob.',
  },
  TOKEN_REVOKED: {
    status: 409,
    description: 'The token is revoked: it cannot be rotated; issue a new one instead.',
  },
  TOKEN_EXPIRED: {
    status: 409,
    description: 'The token has expired: it cannot be rotated; issue a new one instead.',
  },
  DUPLICATE_PATH: {
    status: 409,
    description:
      'Two files of one version have the same path, or paths that differ only in letter case.',
  },
  ALIAS_PROTECTED: {
    status: 409,
    description:
      'The alias is protected (MODELGATE_PROTECTED_ALIASES): only a promotion through its gate moves it (`modelgate promote`).',
  },
  ALIAS_NOT_PROTECTED: {
    status: 400,
    description:
      'Promotions are for protected aliases; set any other alias directly (`modelgate alias set`).',
  },
  GATE_DENIED: {
    status: 409,
    description:
      'The gate refused the promotion: the details hold the decision id and each failed rule with its message.',
  },
  REQUEST_NOT_FOUND: {
    status: 404,
    description: 'No promotion request has this id (for this model and alias).',
  },
  REQUEST_CLOSED: {
    status: 409,
    description:
      'The promotion request is no longer pending (promoted, denied, rejected or superseded); request the promotion again.',
  },
  ALREADY_REVIEWED: {
    status: 409,
    description: 'This identity has already approved or rejected this promotion request.',
  },
  SEPARATION_OF_DUTIES: {
    status: 403,
    description:
      "Separation of duties by person: the version's author, the promotion's requester, whoever ran or imported its evaluations, and the owners of service accounts that did any of these cannot approve it or waive its findings; nobody who authored, evaluated or asked to promote a version of a model changes its risk tier, owner team or bound tags.",
  },
  DECISION_NOT_FOUND: { status: 404, description: 'No gate decision has this id.' },
  WAIVER_NOT_FOUND: { status: 404, description: 'The model has no waiver with this id.' },
  INVALID_WAIVER: {
    status: 400,
    description:
      'A waiver names exactly one finding rule (one found on a version it covers, or a rule id of a built-in evaluator; no wildcards) or one waivable rule of a published gate policy (`policy/validation`), a justification, and an expiry in the future and at most 365 days away.',
  },
  IMPORT_INVALID: {
    status: 400,
    description:
      'An imported evaluation result (garak, promptfoo, SARIF or Modelgate JSON) is malformed; the message names the line or JSON path that is wrong.',
  },
  ENDPOINT_NOT_ALLOWED: {
    status: 403,
    description:
      'An outbound endpoint (a red-team target or judge) is not under a prefix in MODELGATE_ALLOWED_ENDPOINTS, or is spelled so that a server could read another path than the one checked (percent-encoded `/`, `\\` or `.`, dot segments, a backslash) or holds credentials (user@host), or its name resolves to a private, loopback or link-local address, or it redirected elsewhere; nothing was sent to it.',
  },
  SECRET_NOT_FOUND: {
    status: 400,
    description:
      'A header refers to a server-side secret that does not exist, or is not bound to that header name and endpoint (MODELGATE_SECRET_<NAME> with _ENDPOINTS and _HEADERS, or the server config file); one answer for both, so that it tells nothing about which secrets exist.',
  },
  PROBE_PACK_INVALID: {
    status: 400,
    description:
      'A red-team probe pack is unknown or malformed; the message names the pack and the probe or field.',
  },
  REJECTION_NOT_FOUND: {
    status: 404,
    description:
      'The promotion request has no standing rejection to withdraw (none was given, or it was already withdrawn).',
  },
  // Server side
  BLOB_CORRUPT: {
    status: 500,
    description: 'A stored blob no longer hashes to its digest: the blob store was tampered with.',
  },
  NOT_READY: { status: 503, description: 'The server cannot reach its database or blob store.' },
  INTERNAL: {
    status: 500,
    description: 'An unexpected error; the server log has the details under the request id.',
  },
} as const satisfies Record<string, ErrorSpec>;

/** A stable error code from the catalog. */
export type ErrorCode = keyof typeof ERROR_CATALOG;

/** An error that carries a catalog code, a message for people and optional structured details. */
export class ModelgateError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'ModelgateError';
    this.code = code;
    this.details = details;
  }

  /** The HTTP status this error maps to. */
  get status(): number {
    return ERROR_CATALOG[this.code].status;
  }
}

/** True when `e` is a ModelgateError, optionally with the given code. */
export function isModelgateError(e: unknown, code?: ErrorCode): e is ModelgateError {
  return e instanceof ModelgateError && (code === undefined || e.code === code);
}
