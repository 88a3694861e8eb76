import { ModelgateError } from '../core/errors.js';
import { layoutDigest, parseDigest, versionDigest } from '../core/manifest.js';
import { assertAlias, assertFilePath, assertName, assertTags } from '../core/names.js';
import {
  type Actor,
  type Alias,
  type AliasEvent,
  type Dataset,
  DEFAULT_RELATION,
  type LineageEdge,
  type LineageInput,
  type LineageTarget,
  type Model,
  type ModelCard,
  type Page,
  type RiskTier,
  type Version,
  type VersionFile,
} from '../core/types.js';
import type { BlobStore } from './blob-store.js';
import type {
  ModelFilter,
  ModelPatch,
  PageRequest,
  RegistryStore,
  VersionFilter,
} from './registry-store.js';

/** What a client sends to register a version: files already uploaded as blobs. */
export interface RegisterVersionInput {
  files: VersionFile[];
  sourceUri?: string | null;
  card?: Partial<ModelCard>;
  tags?: string[];
  description?: string;
  lineage?: LineageInput[];
}

/** Limits the service enforces on a version. */
export interface RegistryLimits {
  maxFilesPerVersion: number;
  maxLineageDepth: number;
}

const RELATION_RE = /^[A-Za-z][A-Za-z0-9]{0,63}$/;

/** Parses `N` or an alias name from the part after `@` in `NAME@REF`. */
export function parseVersionRef(ref: string): { number: number } | { alias: string } {
  if (/^[0-9]+$/.test(ref)) {
    const n = Number(ref);
    if (Number.isSafeInteger(n) && n >= 1) return { number: n };
    throw new ModelgateError('VALIDATION_FAILED', `version number ${ref} is out of range`, { ref });
  }
  assertAlias(ref);
  return { alias: ref };
}

/** The registry's use cases: models, versions, aliases, datasets and lineage. */
/** Aliases that only a promotion moves, unless configured otherwise. */
/** The owner team and risk tier of a model created without them. */
export const DEFAULT_TEAM = 'default';
export const DEFAULT_TIER: RiskTier = 'minimal';

export const DEFAULT_PROTECTED_ALIASES: ReadonlySet<string> = new Set(['production', 'staging']);

export class RegistryService {
  constructor(
    private readonly store: RegistryStore,
    private readonly blobs: BlobStore,
    private readonly limits: RegistryLimits = { maxFilesPerVersion: 10_000, maxLineageDepth: 10 },
    /** Aliases only a promotion moves (`MODELGATE_PROTECTED_ALIASES`); set and delete refuse them. */
    readonly protectedAliases: ReadonlySet<string> = DEFAULT_PROTECTED_ALIASES,
  ) {}

  private refuseProtected(model: string, alias: string, what: string) {
    if (this.protectedAliases.has(alias))
      throw new ModelgateError(
        'ALIAS_PROTECTED',
        `${alias} is a protected alias: only a promotion through its gate ${what} it (modelgate promote ${model}@<version> --to ${alias})`,
        { model, alias },
      );
  }

  async createModel(
    input: {
      name: string;
      ownerTeam?: string;
      riskTier?: RiskTier;
      description?: string;
      intendedUse?: string;
      tags?: string[];
    },
    actor: Actor,
  ): Promise<Model> {
    assertName('model', input.name);
    const ownerTeam = input.ownerTeam ?? DEFAULT_TEAM;
    assertName('team', ownerTeam);
    const tags = input.tags ?? [];
    assertTags(tags);
    return this.store.createModel(
      {
        name: input.name,
        ownerTeam,
        riskTier: input.riskTier ?? DEFAULT_TIER,
        description: input.description ?? '',
        intendedUse: input.intendedUse ?? '',
        tags: [...new Set(tags)],
      },
      actor,
    );
  }

  async getModel(name: string): Promise<Model> {
    assertName('model', name);
    const m = await this.store.getModel(name);
    if (!m) throw new ModelgateError('MODEL_NOT_FOUND', `model ${name} not found`, { model: name });
    return m;
  }

  /** Throws INVALID_NAME for a team name the registry would refuse. */
  checkTeamName(team: string): void {
    assertName('team', team);
  }

  /** Throws for tags the registry would refuse. */
  checkTags(tags: string[]): void {
    assertTags(tags);
  }

  async updateModel(name: string, patch: ModelPatch, actor: Actor): Promise<Model> {
    assertName('model', name);
    if (patch.ownerTeam !== undefined) assertName('team', patch.ownerTeam);
    if (patch.tags !== undefined) assertTags(patch.tags);
    return this.store.updateModel(
      name,
      { ...patch, ...(patch.tags && { tags: [...new Set(patch.tags)] }) },
      actor,
    );
  }

  listModels(filter: ModelFilter, page: PageRequest): Promise<Page<Model>> {
    if (filter.tag !== undefined) assertTags([filter.tag]);
    return this.store.listModels(filter, page);
  }

  /**
   * Registers a version. Every file must already be in the blob store with the declared
   * size; the digest is computed here, never taken from the client.
   */
  async registerVersion(
    model: string,
    input: RegisterVersionInput,
    actor: Actor,
  ): Promise<Version> {
    assertName('model', model);
    if (input.files.length === 0) {
      throw new ModelgateError('VALIDATION_FAILED', 'a version needs at least one file', {});
    }
    if (input.files.length > this.limits.maxFilesPerVersion) {
      throw new ModelgateError(
        'VALIDATION_FAILED',
        `a version may have at most ${this.limits.maxFilesPerVersion} files, got ${input.files.length}`,
        { limit: this.limits.maxFilesPerVersion },
      );
    }
    const seen = new Set<string>();
    // Paths that differ only in letter case are one file on case-insensitive file systems
    // (macOS, Windows): a checkout would keep one of them. (NFC twins cannot get this far:
    // assertFilePath refuses a path that is not NFC.)
    const folded = new Map<string, string>();
    for (const f of input.files) {
      assertFilePath(f.path);
      parseDigest(f.digest);
      if (seen.has(f.path)) {
        throw new ModelgateError('DUPLICATE_PATH', `file path ${f.path} appears twice`, {
          path: f.path,
        });
      }
      seen.add(f.path);
      const key = f.path.normalize('NFC').toLowerCase();
      const twin = folded.get(key);
      if (twin !== undefined)
        throw new ModelgateError(
          'DUPLICATE_PATH',
          `file path ${JSON.stringify(f.path)} collides with ${JSON.stringify(twin)}: they differ only in letter case, and are one file where case is ignored`,
          { path: f.path, other: twin },
        );
      folded.set(key, f.path);
    }
    // A file and a folder of the same name cannot both exist in a model tree.
    for (const p of seen) {
      const parts = p.split('/');
      for (let i = 1; i < parts.length; i++) {
        const dir = parts.slice(0, i).join('/');
        if (seen.has(dir)) {
          throw new ModelgateError('INVALID_PATH', `path ${dir} is both a file and a folder`, {
            path: dir,
          });
        }
      }
    }
    const tags = input.tags ?? [];
    assertTags(tags);
    const lineage = (input.lineage ?? []).map((l) => this.checkLineage(l));
    // Model existence first, so an unknown model says so rather than a missing blob.
    await this.getModel(model);
    const sizes = new Map<string, number | undefined>();
    for (const f of input.files) {
      if (!sizes.has(f.digest)) sizes.set(f.digest, await this.blobs.size(f.digest));
      const size = sizes.get(f.digest);
      if (size === undefined) {
        throw new ModelgateError(
          'BLOB_NOT_FOUND',
          `file ${f.path}: blob ${f.digest} has not been uploaded`,
          {
            path: f.path,
            digest: f.digest,
          },
        );
      }
      if (size !== f.size) {
        throw new ModelgateError(
          'BLOB_MISMATCH',
          `file ${f.path}: declared size ${f.size} but blob ${f.digest} has ${size} bytes`,
          { path: f.path, declared: f.size, stored: size },
        );
      }
    }
    const manifest = input.files.map((f) => ({
      path: f.path,
      size: f.size,
      sha256: f.digest.slice(7),
    }));
    const digest = versionDigest(manifest);
    return this.store.createVersion(
      model,
      {
        files: input.files.map((f) => ({ path: f.path, size: f.size, digest: f.digest })),
        digest,
        layoutDigest: layoutDigest(manifest),
        sourceUri: input.sourceUri ?? null,
        author: actor.identity,
        card: { markdown: input.card?.markdown ?? '', fields: input.card?.fields ?? {} },
        tags: [...new Set(tags)],
        description: input.description ?? '',
        lineage,
      },
      actor,
    );
  }

  private checkLineage(l: LineageInput): LineageInput {
    const relation = l.relation || DEFAULT_RELATION[l.target.kind];
    if (!RELATION_RE.test(relation)) {
      throw new ModelgateError(
        'VALIDATION_FAILED',
        `invalid lineage relation ${JSON.stringify(relation)}: use 1-64 letters and digits, starting with a letter (e.g. trainedOn)`,
        { relation },
      );
    }
    const t = l.target;
    if (t.kind === 'dataset') assertName('dataset', t.dataset);
    if (t.kind === 'version') assertName('model', t.model);
    if ((t.kind === 'run' || t.kind === 'code') && !URL.canParse(t.uri)) {
      throw new ModelgateError(
        'VALIDATION_FAILED',
        `lineage ${t.kind} reference ${JSON.stringify(t.uri)} is not a URI`,
        {
          uri: t.uri,
        },
      );
    }
    return { relation, target: t };
  }

  /** Resolves `N` or an alias to a version number. */
  async resolveRef(model: string, ref: string): Promise<number> {
    assertName('model', model);
    const r = parseVersionRef(ref);
    if ('number' in r) return r.number;
    const a = await this.store.getAlias(model, r.alias);
    if (!a) {
      throw new ModelgateError('VERSION_NOT_FOUND', `model ${model} has no alias ${r.alias}`, {
        model,
        alias: r.alias,
      });
    }
    return a.version;
  }

  async getVersion(model: string, ref: string): Promise<Version> {
    const number = await this.resolveRef(model, ref);
    const v = await this.store.getVersion(model, number);
    if (!v) {
      throw new ModelgateError('VERSION_NOT_FOUND', `model ${model} has no version ${number}`, {
        model,
        version: number,
      });
    }
    return v;
  }

  async listVersions(
    model: string,
    filter: VersionFilter,
    page: PageRequest,
  ): Promise<Page<Version>> {
    assertName('model', model);
    if (filter.tag !== undefined) assertTags([filter.tag]);
    if (filter.digest !== undefined) parseDigest(filter.digest);
    return this.store.listVersions(model, filter, page);
  }

  async updateVersion(
    model: string,
    ref: string,
    patch: { tags?: string[]; description?: string },
    actor: Actor,
  ): Promise<Version> {
    if (patch.tags !== undefined) assertTags(patch.tags);
    const number = await this.resolveRef(model, ref);
    return this.store.updateVersionMeta(
      model,
      number,
      { ...patch, ...(patch.tags && { tags: [...new Set(patch.tags)] }) },
      actor,
    );
  }

  async setAlias(model: string, alias: string, ref: string, actor: Actor): Promise<Alias> {
    assertName('model', model);
    assertAlias(alias);
    this.refuseProtected(model, alias, 'moves');
    const number = await this.resolveRef(model, ref);
    return this.store.setAlias(model, alias, number, actor);
  }

  async deleteAlias(model: string, alias: string, actor: Actor): Promise<void> {
    assertName('model', model);
    assertAlias(alias);
    this.refuseProtected(model, alias, 'changes');
    await this.store.deleteAlias(model, alias, actor);
  }

  async getAlias(model: string, alias: string): Promise<Alias> {
    assertName('model', model);
    assertAlias(alias);
    const a = await this.store.getAlias(model, alias);
    if (!a)
      throw new ModelgateError('ALIAS_NOT_FOUND', `model ${model} has no alias ${alias}`, {
        model,
        alias,
      });
    return a;
  }

  async listAliases(model: string): Promise<Alias[]> {
    assertName('model', model);
    return this.store.listAliases(model);
  }

  async aliasHistory(
    model: string,
    alias: string | undefined,
    page: PageRequest,
  ): Promise<Page<AliasEvent>> {
    assertName('model', model);
    if (alias !== undefined) assertAlias(alias);
    return this.store.aliasHistory(model, alias === undefined ? {} : { alias }, page);
  }

  /**
   * Which version each alias (or the one named) pointed at, at time `at`, answered from the
   * history: the newest change at or before `at`. An alias deleted by then maps to null.
   */
  async aliasesAt(
    model: string,
    at: string,
    alias?: string,
  ): Promise<{ alias: string; version: number | null; event: AliasEvent }[]> {
    assertName('model', model);
    if (alias !== undefined) assertAlias(alias);
    const t = Date.parse(at);
    if (Number.isNaN(t)) {
      throw new ModelgateError(
        'VALIDATION_FAILED',
        `invalid time ${JSON.stringify(at)}: use ISO 8601, e.g. 2026-03-03T12:00:00Z`,
        {
          at,
        },
      );
    }
    const events = await this.store.aliasEventsAt(model, new Date(t).toISOString(), alias);
    return events.map((e) => ({ alias: e.alias, version: e.toVersion, event: e }));
  }

  async createDataset(
    input: {
      name: string;
      uri: string;
      digest?: string | null;
      licence?: string | null;
      description?: string;
    },
    actor: Actor,
  ): Promise<Dataset> {
    assertName('dataset', input.name);
    if (!URL.canParse(input.uri)) {
      throw new ModelgateError(
        'VALIDATION_FAILED',
        `dataset uri ${JSON.stringify(input.uri)} is not a URI`,
        {
          uri: input.uri,
        },
      );
    }
    if (input.digest) parseDigest(input.digest);
    return this.store.createDataset(
      {
        name: input.name,
        uri: input.uri,
        digest: input.digest ?? null,
        licence: input.licence ?? null,
        description: input.description ?? '',
      },
      actor,
    );
  }

  async getDataset(name: string): Promise<Dataset> {
    assertName('dataset', name);
    const d = await this.store.getDataset(name);
    if (!d)
      throw new ModelgateError('DATASET_NOT_FOUND', `dataset ${name} not found`, { dataset: name });
    return d;
  }

  listDatasets(filter: { namePrefix?: string }, page: PageRequest): Promise<Page<Dataset>> {
    return this.store.listDatasets(filter, page);
  }

  /**
   * Breadth-first lineage walk from a version or a dataset. Upstream follows edges out of
   * versions (what went into it); downstream follows edges into the start (what was built
   * from it). Each edge is reported once, with the depth at which it was first reached.
   */
  async lineage(
    start: LineageTarget,
    direction: 'upstream' | 'downstream',
    depth: number,
  ): Promise<{ start: LineageTarget; direction: string; depth: number; edges: LineageEdge[] }> {
    if (!Number.isInteger(depth) || depth < 1 || depth > this.limits.maxLineageDepth) {
      throw new ModelgateError(
        'VALIDATION_FAILED',
        `depth must be 1-${this.limits.maxLineageDepth}`,
        { depth },
      );
    }
    if (start.kind === 'version') await this.getVersion(start.model, String(start.version));
    else if (start.kind === 'dataset') await this.getDataset(start.dataset);
    const key = (t: LineageTarget) =>
      t.kind === 'dataset'
        ? `d:${t.dataset}`
        : t.kind === 'version'
          ? `v:${t.model}@${t.version}`
          : `${t.kind}:${t.uri}`;
    const edges: LineageEdge[] = [];
    const seenEdges = new Set<string>();
    const visited = new Set<string>([key(start)]);
    let frontier: LineageTarget[] = [start];
    for (let d = 1; d <= depth && frontier.length > 0; d++) {
      const found =
        direction === 'upstream'
          ? await this.store.edgesFrom(
              frontier.flatMap((t) =>
                t.kind === 'version' ? [{ model: t.model, version: t.version }] : [],
              ),
            )
          : await this.store.edgesTo(frontier);
      const next: LineageTarget[] = [];
      for (const e of found) {
        const ek = `${e.from.model}@${e.from.version}|${e.relation}|${key(e.target)}`;
        if (seenEdges.has(ek)) continue;
        seenEdges.add(ek);
        edges.push({ ...e, depth: d });
        const node: LineageTarget =
          direction === 'upstream'
            ? e.target
            : { kind: 'version', model: e.from.model, version: e.from.version };
        if (!visited.has(key(node))) {
          visited.add(key(node));
          next.push(node);
        }
      }
      frontier = next;
    }
    return { start, direction, depth, edges };
  }
}
