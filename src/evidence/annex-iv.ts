import type { Dataset, LineageEdge, Model, Version } from '../core/types.js';
import type { EvidenceInput } from './compliance.js';

/** What an Annex IV draft is assembled from: the record of one version. */
export interface AnnexIvInput {
  model: Model;
  version: Version;
  /** Every version of the model, oldest first (number, digest, when, by whom). */
  versions: { number: number; digest: string; createdAt: string; author: string }[];
  lineage: LineageEdge[];
  datasets: Dataset[];
  evaluations: {
    id: string;
    evaluator: { id: string; version: string };
    status: string;
    finishedAt: string | null;
    metrics: Record<string, number>;
  }[];
  attestations: EvidenceInput['attestations'];
  aliasEvents: {
    alias: string;
    fromVersion: number | null;
    toVersion: number | null;
    actor: string;
    at: string;
  }[];
  now: Date;
}

const providerSupplies = (what: string) => `> **To be supplied by the provider:** ${what}`;

/**
 * A draft of the EU AI Act Annex IV technical documentation for one version, in Markdown, with
 * what the registry records filled in (each item naming its attestation) and every part the
 * record cannot supply marked as such. A draft to complete, not a finished dossier.
 */
export function annexIvDraft(i: AnnexIvInput): string {
  const m = i.model;
  const v = i.version;
  const card = v.card.fields;
  const str = (x: unknown) => (typeof x === 'string' && x.trim() !== '' ? x : undefined);
  const att = (kind: string) => i.attestations.filter((a) => a.kind === kind);
  const out: string[] = [
    `# Technical documentation (EU AI Act, Annex IV): ${m.name}, version ${v.number}`,
    '',
    `Draft assembled by Modelgate on ${i.now.toISOString()} from the registry's record of version`,
    `\`${v.digest}\`. Items in brackets name the signed attestation or record each statement comes`,
    'from. Parts the record cannot supply are marked; this draft is not legal advice and does not',
    'establish conformity.',
    '',
    '## 1. General description of the AI system',
    '',
    `- Intended purpose: ${str(card.intendedUse) ?? str(m.intendedUse) ?? '(not recorded)'} [model card]`,
    `- Provider: owning team \`${m.ownerTeam}\`; risk tier \`${m.riskTier}\` [model record]`,
    `- Version: ${v.number}, digest \`${v.digest}\`, registered by ${v.author} on ${v.createdAt}${
      att('provenance')[0] ? ` [attestation ${att('provenance')[0]?.id}]` : ''
    }`,
    `- Relation to prior versions: ${
      i.versions.filter((x) => x.number < v.number).length === 0
        ? 'first version of this model'
        : i.versions
            .filter((x) => x.number < v.number)
            .map((x) => `${x.number} (\`${x.digest.slice(0, 19)}...\`, ${x.createdAt})`)
            .join('; ')
    } [version history]`,
    `- Form in which it is placed on the market: ${(v.files ?? []).length} file(s): ${(
      v.files ?? []
    )
      .map((f) => `\`${f.path}\` (${f.size} bytes)`)
      .join(', ')} [version record]`,
    '',
    providerSupplies(
      'interaction with other hardware, software or AI systems; versions of relevant software; target hardware; user interface for deployers; instructions for use.',
    ),
    '',
    '## 2. Elements of the AI system and its development process',
    '',
    '### (a) Methods and steps of development, incl. pre-trained systems and third-party tools',
    '',
  ];
  const bases = i.lineage.filter((e) => e.target.kind === 'version');
  const code = i.lineage.filter((e) => e.target.kind === 'code' || e.target.kind === 'run');
  const prov = att('provenance')[0];
  const ref = prov ? ` [attestation ${prov.id}]` : '';
  if (bases.length + code.length === 0)
    out.push('- No base models, code or training runs recorded.');
  for (const e of bases)
    if (e.target.kind === 'version')
      out.push(`- ${e.relation} \`${e.target.model}@${e.target.version}\`${ref}`);
  for (const e of code)
    if (e.target.kind === 'code' || e.target.kind === 'run')
      out.push(`- ${e.relation} ${e.target.kind} <${e.target.uri}>${ref}`);
  out.push(
    '',
    '### (b) Design specifications, (c) architecture and compute',
    '',
    str(card.architecture)
      ? `- Architecture: ${card.architecture} [model card]`
      : providerSupplies(
          'general logic, key design choices and trade-offs; architecture; computational resources used for development, training, testing and validation.',
        ),
    '',
    '### (d) Data requirements and datasheets',
    '',
  );
  const data = i.lineage.filter((e) => e.target.kind === 'dataset');
  if (data.length === 0)
    out.push(
      providerSupplies(
        'the training, validation and test data and their provenance; none is recorded.',
      ),
    );
  for (const e of data) {
    if (e.target.kind !== 'dataset') continue;
    const name = e.target.dataset;
    const d = i.datasets.find((x) => x.name === name);
    out.push(
      `- ${e.relation} \`${name}\`${d ? `: ${d.uri}${d.licence ? `, licence ${d.licence}` : ''}${d.digest ? `, digest \`${d.digest}\`` : ''}${d.description ? `; ${d.description}` : ''}` : ''}${ref}`,
    );
  }
  if (data.length > 0)
    out.push(
      '',
      providerSupplies('selection, labelling and cleaning procedures for each dataset.'),
    );
  out.push(
    '',
    '### (e) Human oversight measures, (f) predetermined changes',
    '',
    providerSupplies(
      'the assessment of human oversight measures (Art. 14) and any predetermined changes.',
    ),
    '',
    '### (g) Validation and testing: procedures, data, metrics, signed test reports',
    '',
  );
  const evalAtt = new Map(att('evaluation').map((a) => [a.ref, a]));
  if (i.evaluations.length === 0) out.push('- No evaluation of this version recorded.');
  for (const e of i.evaluations) {
    const a = evalAtt.get(e.id);
    const metrics = Object.entries(e.metrics)
      .map(([k, x]) => `${k}=${x}`)
      .join(', ');
    out.push(
      `- ${e.evaluator.id} ${e.evaluator.version} (${e.id}): ${e.status}${a ? `, result ${a.predicate.result}` : ''}${e.finishedAt ? `, ${e.finishedAt}` : ''}${metrics ? `; ${metrics}` : ''}${a ? ` [attestation ${a.id}]` : ''}`,
    );
  }
  for (const a of att('approval'))
    out.push(
      `- Signed ${a.predicate.decision === 'approve' ? 'approval' : 'rejection'} by ${a.predicate.reviewer} on ${a.predicate.at} for ${a.predicate.alias}: ${a.predicate.comment} [attestation ${a.id}]`,
    );
  for (const a of att('decision')) {
    const d = a.predicate.modelgate as {
      decision: number;
      alias: string;
      outcome: string;
      policies: { name: string; version: number }[];
    };
    out.push(
      `- Gate decision ${d.decision} for ${d.alias}: ${d.outcome} under ${d.policies.map((p) => `${p.name}@${p.version}`).join(', ') || 'no policy'} [attestation ${a.id}]`,
    );
  }
  out.push(
    '',
    providerSupplies(
      'test data description and metrics for potentially discriminatory impacts, where not recorded above.',
    ),
    '',
    '### (h) Cybersecurity measures',
    '',
  );
  const scans = i.evaluations.filter((e) => e.evaluator.id === 'artifact-scan');
  if (scans.length === 0) out.push('- No artifact scan of this version recorded.');
  for (const e of scans) {
    const a = evalAtt.get(e.id);
    out.push(
      `- Artifact scan ${e.id}: ${e.status}; findings ${['critical', 'high', 'medium', 'low']
        .map((s) => `${s} ${e.metrics[s] ?? 0}`)
        .join(', ')}${a ? ` [attestation ${a.id}]` : ''}`,
    );
  }
  for (const a of att('waiver'))
    out.push(
      `- Accepted risk: waiver ${a.predicate.id} of ${a.predicate.findingRule ?? a.predicate.rule} by ${a.predicate.approvedBy} until ${a.predicate.expiresAt}: ${a.predicate.justification} [attestation ${a.id}]`,
    );
  out.push(
    '',
    '## 3. Monitoring, functioning and control',
    '',
    str(card.limitations)
      ? `- Limitations: ${card.limitations} [model card]`
      : providerSupplies('capabilities and limitations in performance.'),
    '',
    providerSupplies(
      'degrees of accuracy for specific persons or groups and overall expected accuracy (no subgroup breakdown is recorded); foreseeable unintended outcomes; human oversight; input data specifications.',
    ),
    '',
    '## 4. Appropriateness of the performance metrics',
    '',
    providerSupplies('why the chosen performance metrics are appropriate for this system.'),
    '',
    '## 5. Risk-management system (Art. 9)',
    '',
    `- Risk tier \`${m.riskTier}\`; ${att('waiver').length} risk acceptance(s) recorded (section 2(h)).`,
    '',
    providerSupplies(
      'the risk-management system: identified risks, estimates, measures and residual risk.',
    ),
    '',
    '## 6. Relevant changes through the lifecycle',
    '',
  );
  if (i.aliasEvents.length === 0) out.push('- No alias of this model has pointed at this version.');
  for (const e of i.aliasEvents)
    out.push(
      `- ${e.at}: ${e.alias} ${e.fromVersion ?? '-'} -> ${e.toVersion ?? '-'} by ${e.actor} [audit log]`,
    );
  out.push(
    `- ${i.versions.length} version(s) of ${m.name} registered; versions are immutable and digest-addressed [version history]`,
    '',
    '## 7. Harmonised standards applied',
    '',
    providerSupplies('the harmonised standards or other specifications applied.'),
    '',
    '## 8. EU declaration of conformity (Art. 47)',
    '',
    providerSupplies('a copy of the EU declaration of conformity.'),
    '',
    '## 9. Post-market monitoring (Art. 72)',
    '',
    providerSupplies(
      'the post-market monitoring plan; Modelgate does not record post-deployment monitoring.',
    ),
    '',
  );
  return out.join('\n');
}
