import type { Model, Version } from '../core/types.js';

/**
 * How audit events name what they are about, and the parts of a record an event's content
 * holds, so that `audit verify` can compare the database's current rows with the log.
 */
export const subjects = {
  model: (name: string) => `model:${name}`,
  version: (model: string, n: number) => `version:${model}@${n}`,
  alias: (model: string, alias: string) => `alias:${model}:${alias}`,
  dataset: (name: string) => `dataset:${name}`,
  evaluation: (model: string, n: number, id: string) => `evaluation:${model}@${n}/${id}`,
  identity: (name: string) => `identity:${name}`,
  token: (id: string) => `token:${id}`,
  policy: (id: string) => `policy:${id}`,
  gatePolicy: (name: string, version: number) => `gate-policy:${name}@${version}`,
  decision: (model: string, alias: string, id: number) => `decision:${model}:${alias}/${id}`,
  request: (model: string, alias: string, id: number) => `request:${model}:${alias}/${id}`,
  waiver: (model: string, id: number) => `waiver:${model}/${id}`,
  attestation: (model: string, n: number, id: number) => `attestation:${model}@${n}/${id}`,
  exportOf: (model: string, n: number) => `export:${model}@${n}`,
};

/** Subject prefixes of every event about a model: itself, its versions, aliases and evaluations. */
export function modelSubjects(name: string): { equals: string[]; prefixes: string[] } {
  return {
    equals: [subjects.model(name)],
    prefixes: [
      `version:${name}@`,
      `alias:${name}:`,
      `evaluation:${name}@`,
      `decision:${name}:`,
      `request:${name}:`,
      `waiver:${name}/`,
      `attestation:${name}@`,
      `export:${name}@`,
    ],
  };
}

/** A model as its audit events record it. */
export function modelContent(m: Model): Model {
  return { ...m, tags: [...m.tags] };
}

/** A version as its audit events record it: the whole record, files in path order. */
export function versionContent(v: Version): Version {
  const files = [...(v.files ?? [])].sort((a, b) =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : 0,
  );
  return { ...v, fileCount: v.fileCount, files };
}
