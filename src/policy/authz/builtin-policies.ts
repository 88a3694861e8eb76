/**
 * The built-in roles as Cedar policies, keyed by policy id (the id a denial names). Each
 * policy's `@reason` is what an explanation prints. Operators add policies beside these; all
 * are validated against the schema before they take effect.
 */
export const BUILTIN_POLICIES: Record<string, string> = {
  'viewer-read': `@reason("viewers may read the registry")
permit (principal in Role::"viewer", action == Action::"read", resource);`,

  'contributor-read': `@reason("contributors may read the registry")
permit (principal in Role::"contributor", action == Action::"read", resource);`,

  'contributor-create-model': `@reason("contributors may create models owned by their own teams")
permit (principal in Role::"contributor", action == Action::"createModel", resource is Model)
when { principal in resource.team };`,

  'new-model-classified': `@reason("a new model starts at risk tier high unless an approver classifies it lower: the tier decides which gate rules bind it")
forbid (principal, action == Action::"createModel", resource is Model)
when { resource.tier == "minimal" || resource.tier == "limited" }
unless { principal in Role::"approver" || principal in Role::"admin" };`,

  'contributor-register': `@reason("contributors may register datasets and upload files")
permit (
  principal in Role::"contributor",
  action in [Action::"registerDataset", Action::"uploadBlob"],
  resource
);`,

  'contributor-own-team-models': `@reason("contributors may change and push to models of their own team")
permit (
  principal in Role::"contributor",
  action in [Action::"updateModel", Action::"pushVersion"],
  resource is Model
)
when { principal in resource.team };`,

  'contributor-own-team-aliases': `@reason("contributors may set aliases, staging included, on models of their own team")
permit (
  principal in Role::"contributor",
  action in [Action::"setAlias", Action::"requestPromotion"],
  resource is Alias
)
when { principal in resource.model.team };`,

  'evaluator-read': `@reason("evaluators may read the registry")
permit (principal in Role::"evaluator", action == Action::"read", resource);`,

  'evaluator-run': `@reason("evaluators may run evaluations")
permit (principal in Role::"evaluator", action == Action::"runEvaluation", resource);`,

  'approver-read': `@reason("approvers may read the registry")
permit (principal in Role::"approver", action == Action::"read", resource);`,

  'approver-promote': `@reason("approvers may set, request and approve promotions of any alias")
permit (
  principal in Role::"approver",
  action in [Action::"setAlias", Action::"requestPromotion", Action::"approvePromotion"],
  resource is Alias
);`,

  'approver-classify': `@reason("approvers may change what decides which gate rules bind a model: its risk tier, owner team and bound tags")
permit (principal in Role::"approver", action == Action::"classifyModel", resource is Model);`,

  'approver-withdraw-own-rejection': `@reason("a rejection stands until the approver who gave it withdraws it (admins may override)")
permit (principal in Role::"approver", action == Action::"withdrawRejection", resource is Alias)
when { principal.name == context.reviewer };`,

  'approver-waive': `@reason("approvers may waive findings and gate rules, with a justification and an expiry")
permit (principal in Role::"approver", action == Action::"waiveFinding", resource);`,

  'approver-read-audit': `@reason("approvers may read the audit log")
permit (principal in Role::"approver", action == Action::"readAudit", resource);`,

  'witness-cosign': `@reason("witnesses may read the audit log and add their cosignatures")
permit (
  principal in Role::"witness",
  action in [Action::"readAudit", Action::"witnessLog"],
  resource
);`,

  'admin-all': `@reason("admins may do everything the forbid rules allow")
permit (principal in Role::"admin", action, resource);`,

  'production-only-approvers': `@reason("only approvers set or approve production (anyone allowed may request)")
forbid (
  principal,
  action in [Action::"setAlias", Action::"approvePromotion"],
  resource is Alias
)
when { resource.name == "production" }
unless { principal in Role::"approver" };`,

  'high-tier-production-risk-team': `@reason("production of a high-tier model needs an approver from the risk team")
forbid (
  principal,
  action in [Action::"setAlias", Action::"approvePromotion"],
  resource is Alias
)
when { resource.name == "production" && resource.model.tier == "high" }
unless { principal in Team::"risk" };`,

  'high-tier-lowering-risk-team': `@reason("lowering the risk tier of a high or unacceptable-risk model needs someone from the risk team")
forbid (principal, action == Action::"classifyModel", resource is Model)
when { context.lowersTier && (resource.tier == "high" || resource.tier == "unacceptable") }
unless { principal in Team::"risk" };`,

  'no-self-approval': `@reason("four eyes: nobody approves the promotion of a version they registered")
forbid (principal, action == Action::"approvePromotion", resource)
when { context.versionAuthor == principal.name };`,

  'no-self-waiver': `@reason("four eyes: nobody waives findings of a version they registered")
forbid (principal, action == Action::"waiveFinding", resource is ModelVersion)
when { resource.author == principal.name };`,
};

/** The built-in roles and what each is for. */
export const BUILTIN_ROLES: Readonly<Record<string, string>> = {
  viewer: 'read the registry',
  contributor:
    'create models for their own teams, push versions and set non-production aliases on models of their own team',
  evaluator: 'run evaluations',
  approver:
    "request and approve promotions, production included; waive findings and gate rules; change a model's risk tier, owner team and bound tags; read the audit log",
  witness: 'read the audit log and cosign its checkpoints (a witness process)',
  admin: 'everything the forbid rules allow, identities and policies included',
};
