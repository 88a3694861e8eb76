/**
 * The Cedar schema every authorization request and every policy is validated against (strict
 * mode). Principals are people and non-human identities; both belong to teams and hold roles.
 * Resources carry what rules need: a model's team and risk tier, a version's author, an
 * alias's name and whether it is protected.
 */
export const AUTHZ_SCHEMA = `
entity Role;
entity Team;
entity User in [Team, Role] { name: String };
entity ServiceAccount in [Team, Role] { name: String };
entity Registry;
entity Model { team: Team, tier: String };
entity ModelVersion in [Model] { model: Model, author: String };
entity Alias in [Model] { model: Model, name: String, protected: Bool };

action read appliesTo {
  principal: [User, ServiceAccount],
  resource: [Registry, Model, ModelVersion, Alias]
};
action registerDataset, uploadBlob, publishPolicy, readAudit, witnessLog, manageIdentities appliesTo {
  principal: [User, ServiceAccount],
  resource: [Registry]
};
action createModel appliesTo {
  principal: [User, ServiceAccount],
  resource: [Registry, Model]
};
action updateModel, pushVersion appliesTo {
  principal: [User, ServiceAccount],
  resource: [Model]
};
action classifyModel appliesTo {
  principal: [User, ServiceAccount],
  resource: [Model],
  context: { tierTo: String, lowersTier: Bool, teamTo: String }
};
action runEvaluation appliesTo {
  principal: [User, ServiceAccount],
  resource: [ModelVersion]
};
action waiveFinding appliesTo {
  principal: [User, ServiceAccount],
  resource: [Model, ModelVersion]
};
action setAlias, requestPromotion appliesTo {
  principal: [User, ServiceAccount],
  resource: [Alias]
};
action approvePromotion appliesTo {
  principal: [User, ServiceAccount],
  resource: [Alias],
  context: { versionAuthor: String }
};
action withdrawRejection appliesTo {
  principal: [User, ServiceAccount],
  resource: [Alias],
  context: { reviewer: String }
};
`;

/** The actions the schema defines, in the order documentation lists them. */
export const ACTIONS = [
  'read',
  'createModel',
  'registerDataset',
  'uploadBlob',
  'updateModel',
  'classifyModel',
  'pushVersion',
  'runEvaluation',
  'waiveFinding',
  'setAlias',
  'requestPromotion',
  'approvePromotion',
  'withdrawRejection',
  'publishPolicy',
  'readAudit',
  'witnessLog',
  'manageIdentities',
] as const;
export type Action = (typeof ACTIONS)[number];

/** The built-in roles, each shipped as policies in builtin-policies.ts. */
export const ROLES = [
  'viewer',
  'contributor',
  'evaluator',
  'approver',
  'witness',
  'admin',
] as const;
export type RoleName = (typeof ROLES)[number];
