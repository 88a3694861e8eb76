import { randomUUID } from 'node:crypto';
import type { Dataset, LineageEdge, Model, Version } from '../core/types.js';

/** What a version's ML-BOM is built from: the record, its direct lineage and its evaluations. */
export interface MlBomInput {
  model: Model;
  version: Version;
  lineage: LineageEdge[];
  /** Dataset records the lineage names (when they still exist). */
  datasets: Dataset[];
  evaluations: {
    id: string;
    evaluator: { id: string; version: string };
    status: string;
    metrics: Record<string, number>;
  }[];
  tool: { name: string; version: string };
  now: Date;
}

type Json = Record<string, unknown>;

const hex = (digest: string) => digest.replace(/^sha256:/, '');
const text = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v : undefined);

/**
 * A CycloneDX 1.6 BOM for one model version: a `machine-learning-model` component with the
 * version digest and its files' hashes, a `modelCard` (datasets from lineage, evaluation metrics
 * as `quantitativeAnalysis`, intended use and limitations from the card as `considerations`),
 * dataset components, base models, and training runs and code as external references.
 */
export function mlBom(input: MlBomInput): Json {
  const { model: m, version: v } = input;
  const ref = `model:${m.name}@${v.number}`;
  const card = v.card.fields;
  const datasetRefs: string[] = [];
  const components: Json[] = [];
  const externalReferences: Json[] = [];
  for (const e of input.lineage) {
    const t = e.target;
    if (t.kind === 'dataset') {
      const d = input.datasets.find((x) => x.name === t.dataset);
      const dref = `dataset:${t.dataset}`;
      datasetRefs.push(dref);
      components.push({
        type: 'data',
        'bom-ref': dref,
        name: t.dataset,
        ...(d?.description && { description: d.description }),
        ...(d?.digest && { hashes: [{ alg: 'SHA-256', content: hex(d.digest) }] }),
        ...(d?.licence && { licenses: [{ license: { name: d.licence } }] }),
        ...(d?.uri && { externalReferences: [{ type: 'distribution', url: d.uri }] }),
        data: [{ type: 'dataset', name: t.dataset }],
        properties: [{ name: 'modelgate:relation', value: e.relation }],
      });
    } else if (t.kind === 'version') {
      components.push({
        type: 'machine-learning-model',
        'bom-ref': `model:${t.model}@${t.version}`,
        name: t.model,
        version: String(t.version),
        properties: [{ name: 'modelgate:relation', value: e.relation }],
      });
    } else {
      externalReferences.push({
        type: t.kind === 'code' ? 'vcs' : 'build-meta',
        url: t.uri,
        comment: e.relation,
      });
    }
  }
  const performanceMetrics = input.evaluations
    .filter((e) => e.status === 'succeeded')
    .flatMap((e) =>
      Object.entries(e.metrics)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, value]) => ({
          type: `${e.evaluator.id}/${k}`,
          value: String(value),
          slice: `evaluation ${e.id}`,
        })),
    );
  const considerations: Json = {};
  const useCase = text(card.intendedUse) ?? text(m.intendedUse);
  if (useCase) considerations.useCases = [useCase];
  const limitation = text(card.limitations);
  if (limitation) considerations.technicalLimitations = [limitation];
  const modelCard: Json = {
    modelParameters: {
      ...(text(card.task) && { task: card.task }),
      ...(text(card.architecture) && { modelArchitecture: card.architecture }),
      ...(datasetRefs.length > 0 && { datasets: datasetRefs.map((r) => ({ ref: r })) }),
    },
    ...(performanceMetrics.length > 0 && { quantitativeAnalysis: { performanceMetrics } }),
    ...(Object.keys(considerations).length > 0 && { considerations }),
  };
  const component: Json = {
    type: 'machine-learning-model',
    'bom-ref': ref,
    name: m.name,
    version: String(v.number),
    ...((text(v.description) ?? text(m.description))
      ? { description: text(v.description) ?? text(m.description) }
      : {}),
    hashes: [{ alg: 'SHA-256', content: hex(v.digest) }],
    properties: [
      { name: 'modelgate:digest', value: v.digest },
      { name: 'modelgate:riskTier', value: m.riskTier },
      { name: 'modelgate:ownerTeam', value: m.ownerTeam },
      { name: 'modelgate:author', value: v.author },
      ...v.tags.map((t) => ({ name: 'modelgate:tag', value: t })),
    ],
    ...(externalReferences.length > 0 && { externalReferences }),
    modelCard,
    components: (v.files ?? []).map((f) => ({
      type: 'file',
      'bom-ref': `${ref}/${f.path}`,
      name: f.path,
      hashes: [{ alg: 'SHA-256', content: hex(f.digest) }],
      properties: [{ name: 'modelgate:size', value: String(f.size) }],
    })),
  };
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    serialNumber: `urn:uuid:${randomUUID()}`,
    version: 1,
    metadata: {
      timestamp: input.now.toISOString(),
      tools: {
        components: [{ type: 'application', name: input.tool.name, version: input.tool.version }],
      },
      // The BOM describes this model: it is the metadata component, with its card and files.
      component,
    },
    components,
    dependencies: [
      {
        ref,
        dependsOn: components.map((c) => c['bom-ref'] as string),
      },
    ],
  };
}
