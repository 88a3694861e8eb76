import type { Model, Version } from '../core/types.js';
import type { EvaluationStore } from '../evaluators/evaluation-store.js';
import { FACTS_SCHEMA_VERSION, type Facts } from '../policy/gates/facts-schema.js';
import type { RegistryService } from '../registry/registry-service.js';

/** What a gate is asked about: the alias a version would move to, by whom. */
export interface GateRequest {
  alias: string;
  requestedBy: string;
}

/**
 * Gathers the facts a gate policy sees for one version (facts schema v1): the version and its
 * model, its evaluations and their findings, its direct lineage, the request, and `now`.
 * Approvals and waivers are empty until promotions and waivers exist.
 */
export async function loadGateFacts(
  deps: { registry: RegistryService; evaluations: EvaluationStore },
  model: Model,
  version: Version,
  request: GateRequest,
  now: Date,
): Promise<Facts> {
  const [evaluations, findings, lineage] = await Promise.all([
    deps.evaluations.listForVersion(model.name, version.number),
    deps.evaluations.findings({ model: model.name, version: version.number }),
    deps.registry.lineage(
      { kind: 'version', model: model.name, version: version.number },
      'upstream',
      1,
    ),
  ]);
  const evaluatorOf = new Map(evaluations.map((e) => [e.id, e.evaluator.id]));
  return {
    schemaVersion: FACTS_SCHEMA_VERSION,
    version: {
      model: model.name,
      number: version.number,
      digest: version.digest,
      author: version.author,
      createdAt: version.createdAt,
      tags: version.tags,
      card: version.card.fields,
      ...(version.sourceUri !== null && { sourceUri: version.sourceUri }),
    },
    model: {
      name: model.name,
      ownerTeam: model.ownerTeam,
      riskTier: model.riskTier,
      tags: model.tags,
    },
    evaluations: evaluations.map((e) => ({
      id: e.id,
      evaluator: e.evaluator.id,
      evaluatorVersion: e.evaluator.version,
      status: e.status,
      // An evaluation runs on one version, whose bytes never change: its digest is the version's.
      digest: version.digest,
      ranBy: e.requestedBy,
      ...(e.finishedAt !== null && { finishedAt: e.finishedAt }),
      metrics: e.metrics,
    })),
    findings: findings.map((f) => ({
      id: String(f.id),
      ruleId: f.ruleId,
      severity: f.severity,
      title: f.title,
      evaluator: evaluatorOf.get(f.evaluationId) ?? 'unknown',
      evaluationId: f.evaluationId,
      waived: f.status === 'waived',
    })),
    lineage: lineage.edges.map((e) => ({
      relation: e.relation,
      kind: e.target.kind,
      target:
        e.target.kind === 'dataset'
          ? e.target.dataset
          : e.target.kind === 'version'
            ? `${e.target.model}@${e.target.version}`
            : e.target.uri,
    })),
    request: {
      alias: request.alias,
      requestedBy: request.requestedBy,
      requestedAt: now.toISOString(),
    },
    approvals: [],
    waivers: [],
    now: now.toISOString(),
  };
}
