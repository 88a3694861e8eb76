import { hash } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { canonicalize } from '../audit/canonical-json.js';
import type { EventFacts, GovernedTable, LoggedChange, RowState } from '../audit/state-check.js';
import type { DB } from './schema.js';

// The governed tables, one declaration each: how `audit verify` reads a table's rows (with
// references resolved to natural keys), which columns it compares, which it deliberately does
// not and why, and what state each event leaves a row in. DESIGN.md invariant 4 lists the
// records; test/audit-tamper-matrix.test.ts generates its cells from this file and the schema,
// so a table that is neither here nor in UNGOVERNED_TABLES fails that test.

/** A governed table with the query that reads its rows as the checker compares them. */
export interface GovernedTableReader extends GovernedTable {
  read(db: Kysely<DB>): Promise<Map<string, RowState>>;
}

/** Tables `audit verify` does not compare with the log, each with the reason. */
export const UNGOVERNED_TABLES: Readonly<Record<string, string>> = {
  audit_events:
    'the log itself: each row is checked against its leaf (every column) and the Merkle tree',
  audit_pending:
    'events of committed changes not yet in the tree: their content is checked against their digest, and they join the log (and its checks) at the next integration',
  audit_head: "the log's size, checked against the events and the signed checkpoints",
  audit_nodes:
    'subtree hashes: recomputed from the leaves; a stored leaf hash that differs is a violation',
  audit_checkpoints: 'signed checkpoints: checked with the log key and against the rebuilt tree',
  audit_cosignatures: "witness cosignatures: checked with the witnesses' keys when given",
  evaluation_checkpoints:
    "a running evaluation's resumable progress (red-team attempts done): working state of a job, not a governed record; the outcome is logged with the evaluation",
  server_settings:
    'values the servers sharing a database create once: the list-cursor signing secret (a secret, never logged; editing it only invalidates cursors) and one-time markers such as the initial admin token, whose token and identity are themselves logged',
  modelgate_migrations: 'schema bookkeeping of the migrator',
  modelgate_migrations_lock: 'schema bookkeeping of the migrator',
};

const sha = (text: string) => `sha256:${hash('sha256', text, 'hex')}`;
/** A numeric column's value; one that is not a number is compared as it is (and differs). */
const num = (v: unknown) => {
  if (v === null || v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : v;
};
/** A JSON column's value; a column that no longer parses is compared as its text (and differs). */
const json = (text: unknown): unknown => {
  try {
    return JSON.parse(String(text)) as unknown;
  } catch {
    return text;
  }
};
const obj = (v: unknown) =>
  (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
/** `version:m@3` → `m@3`, `evaluation:m@3/ev_x` → `m@3`. */
const versionOfSubject = (subject: string) => {
  const body = subject.slice(subject.indexOf(':') + 1);
  const slash = body.lastIndexOf('/');
  return slash > body.lastIndexOf('@') ? body.slice(0, slash) : body;
};
/** The part of a subject after its last slash: the record id. */
const idOfSubject = (subject: string) => subject.slice(subject.lastIndexOf('/') + 1);

type Row = Record<string, unknown>;
async function rows(db: Kysely<DB>, query: ReturnType<typeof sql>): Promise<Row[]> {
  return (await query.execute(db)).rows as Row[];
}

/** Assigns each row an ordinal within its group (rows ordered by id): the n-th alias change of an alias. */
function ordinals(list: Row[], group: (r: Row) => string): Map<string, Row> {
  const n = new Map<string, number>();
  const out = new Map<string, Row>();
  for (const r of list) {
    const g = group(r);
    const k = (n.get(g) ?? 0) + 1;
    n.set(g, k);
    out.set(`${g}#${k}`, r);
  }
  return out;
}

function mapRows(list: Row[], key: (r: Row) => string, state: (r: Row) => RowState) {
  return new Map(list.map((r) => [key(r), state(r)]));
}

const SURROGATE =
  'surrogate key: rows refer to each other through it, and every reference is compared as the natural key it resolves to';

/** The governed tables, fresh per run (some keep counters while the log streams by). */
export function governedTables(): GovernedTableReader[] {
  // Alias changes, lineage edges and findings have no natural key: the n-th of their group.
  const counters = new Map<string, number>();
  const next = (group: string) => {
    const k = (counters.get(group) ?? 0) + 1;
    counters.set(group, k);
    return `${group}#${k}`;
  };
  // Logged role and team grants of each identity, to end those a later grant change drops.
  const grants = new Map<string, Set<string>>();

  const modelState = (e: EventFacts, m: Row, prev: RowState | undefined): RowState => ({
    name: m.name,
    owner_team: m.ownerTeam,
    risk_tier: m.riskTier,
    description: m.description,
    intended_use: m.intendedUse,
    tags: m.tags,
    created_at: m.createdAt,
    created_by: m.createdBy,
    created_credential: e.action === 'model.create' ? e.credential : prev?.created_credential,
    updated_at: m.updatedAt,
    updated_by: e.actor,
  });

  const versionState = (e: EventFacts, v: Row, prev: RowState | undefined): RowState => ({
    model: v.model,
    number: v.number,
    digest: v.digest,
    layout_digest: v.layoutDigest,
    total_size: v.size,
    file_count: v.fileCount,
    source_uri: v.sourceUri,
    author: v.author,
    created_credential: e.action === 'version.create' ? e.credential : prev?.created_credential,
    card_markdown: obj(v.card).markdown,
    card_fields: obj(v.card).fields,
    tags: v.tags,
    description: v.description,
    created_at: v.createdAt,
    updated_at: e.time,
    updated_by: e.actor,
  });

  const lineageTarget = (t: Row) =>
    t.kind === 'dataset'
      ? t.dataset
      : t.kind === 'version'
        ? `${String(t.model)}@${String(t.version)}`
        : t.uri;

  const grantTable = (
    table: 'identity_roles' | 'team_members',
    column: 'role' | 'team',
    label: string,
    plural: 'roles' | 'teams',
  ): GovernedTableReader => ({
    table,
    label,
    checked: ['identity', column, 'granted_by', 'granted_credential', 'granted_at'],
    unchecked: { identity_id: SURROGATE },
    actions: ['identity.create', 'identity.grants', 'token.create'],
    logged(e, c) {
      const name = String(
        e.action === 'identity.create' ? c.name : e.action === 'token.create' ? c.identity : '',
      );
      const who = e.action === 'identity.grants' ? e.subject.slice('identity:'.length) : name;
      // token.create logs grants only when the server created the identity with the token.
      if (e.action === 'token.create' && !Array.isArray(c[plural])) return [];
      const list = (c[plural] as unknown[] | undefined) ?? [];
      const had = grants.get(who) ?? new Set<string>();
      const out: LoggedChange[] = [];
      const seeded = e.action === 'token.create';
      const want = new Set(list.map(String));
      if (!seeded)
        for (const x of had)
          if (!want.has(x)) {
            out.push({ key: `${who}:${x}`, state: null });
            had.delete(x);
          }
      for (const x of want) {
        if (had.has(x)) continue;
        had.add(x);
        out.push({
          key: `${who}:${x}`,
          state: {
            identity: who,
            [column]: x,
            granted_by: seeded ? null : e.actor,
            granted_credential: seeded ? null : e.credential,
            granted_at: seeded ? null : e.time,
          },
        });
      }
      grants.set(who, had);
      return out;
    },
    async read(db) {
      const list = await rows(
        db,
        sql`SELECT i.name AS identity, g.${sql.ref(column)} AS x, g.granted_by, g.granted_credential, g.granted_at
            FROM ${sql.table(table)} g JOIN identities i ON i.id = g.identity_id`,
      );
      return mapRows(
        list,
        (r) => `${String(r.identity)}:${String(r.x)}`,
        (r) => ({
          identity: r.identity,
          [column]: r.x,
          granted_by: r.granted_by,
          granted_credential: r.granted_credential,
          granted_at: r.granted_at,
        }),
      );
    },
  });

  return [
    {
      table: 'models',
      label: 'model',
      checked: [
        'name',
        'owner_team',
        'risk_tier',
        'description',
        'intended_use',
        'tags',
        'created_at',
        'created_by',
        'created_credential',
        'updated_at',
        'updated_by',
      ],
      unchecked: { id: SURROGATE },
      actions: ['model.create', 'model.update', 'model.govern', 'model.classify'],
      lazy: {
        keyOf: (e) => e.subject.slice('model:'.length),
        sticky: (e) =>
          e.action === 'model.create' ? { created_credential: e.credential } : undefined,
      },
      logged: (e, c, prev) =>
        typeof c.model === 'object' && c.model !== null
          ? [
              {
                key: e.subject.slice('model:'.length),
                state: modelState(e, obj(c.model), prev(e.subject.slice(6))),
              },
            ]
          : [],
      async read(db) {
        return mapRows(
          await rows(db, sql`SELECT * FROM models`),
          (r) => String(r.name),
          (r) => ({ ...r, tags: json(r.tags) }),
        );
      },
    },
    {
      table: 'versions',
      label: 'version',
      checked: [
        'model',
        'number',
        'digest',
        'layout_digest',
        'total_size',
        'file_count',
        'source_uri',
        'author',
        'created_credential',
        'card_markdown',
        'card_fields',
        'tags',
        'description',
        'created_at',
        'updated_at',
        'updated_by',
      ],
      unchecked: { id: SURROGATE, model_id: SURROGATE },
      actions: ['version.create', 'version.update'],
      lazy: {
        keyOf: (e) => versionOfSubject(e.subject),
        sticky: (e) =>
          e.action === 'version.create' ? { created_credential: e.credential } : undefined,
      },
      logged: (e, c, prev) => {
        const key = versionOfSubject(e.subject);
        return [{ key, state: versionState(e, obj(c.version), prev(key)) }];
      },
      async read(db) {
        return mapRows(
          await rows(
            db,
            sql`SELECT m.name AS model, v.* FROM versions v JOIN models m ON m.id = v.model_id`,
          ),
          (r) => `${String(r.model)}@${String(r.number)}`,
          (r) => ({
            ...r,
            number: num(r.number),
            total_size: num(r.total_size),
            file_count: num(r.file_count),
            card_fields: json(r.card_fields),
            tags: json(r.tags),
          }),
        );
      },
    },
    {
      table: 'version_files',
      label: 'version file',
      checked: ['version', 'path', 'size', 'sha256'],
      unchecked: { version_id: SURROGATE },
      actions: ['version.create'],
      logged: (e, c) => {
        const version = versionOfSubject(e.subject);
        const files = (obj(c.version).files as Row[] | undefined) ?? [];
        return files.map((f) => ({
          key: `${version}:${String(f.path)}`,
          state: { version, path: f.path, size: f.size, sha256: String(f.digest).slice(7) },
        }));
      },
      async read(db) {
        return mapRows(
          await rows(
            db,
            sql`SELECT m.name AS model, v.number, f.path, f.size, f.sha256 FROM version_files f
                JOIN versions v ON v.id = f.version_id JOIN models m ON m.id = v.model_id`,
          ),
          (r) => `${String(r.model)}@${String(r.number)}:${String(r.path)}`,
          (r) => ({
            version: `${String(r.model)}@${String(r.number)}`,
            path: r.path,
            size: num(r.size),
            sha256: r.sha256,
          }),
        );
      },
    },
    {
      table: 'aliases',
      label: 'alias',
      checked: ['model', 'name', 'version', 'updated_at', 'updated_by', 'decision_id'],
      unchecked: { model_id: SURROGATE, version_id: SURROGATE },
      actions: ['alias.set', 'alias.delete', 'alias.promote', 'alias.demote'],
      logged: (e, c) => [
        {
          key: `${String(c.model)}:${String(c.alias)}`,
          state:
            e.action === 'alias.delete'
              ? null
              : {
                  model: c.model,
                  name: c.alias,
                  version: c.version,
                  updated_at: e.time,
                  updated_by: e.actor,
                  decision_id: c.decision ?? null,
                },
        },
      ],
      async read(db) {
        return mapRows(
          await rows(
            db,
            sql`SELECT m.name AS model, a.name, v.number AS version, a.updated_at, a.updated_by, a.decision_id
                FROM aliases a JOIN models m ON m.id = a.model_id JOIN versions v ON v.id = a.version_id`,
          ),
          (r) => `${String(r.model)}:${String(r.name)}`,
          (r) => ({ ...r, version: num(r.version), decision_id: num(r.decision_id) }),
        );
      },
    },
    {
      table: 'alias_events',
      label: 'alias change',
      checked: ['model', 'alias', 'from_version', 'to_version', 'actor', 'credential_id', 'at'],
      unchecked: { id: SURROGATE, model_id: SURROGATE },
      actions: ['alias.set', 'alias.delete', 'alias.promote', 'alias.demote'],
      logged: (e, c) => [
        {
          key: next(`${String(c.model)}:${String(c.alias)}`),
          state: {
            model: c.model,
            alias: c.alias,
            from_version: c.previous ?? null,
            to_version: c.version ?? null,
            actor: e.actor,
            credential_id: e.credential,
            at: e.time,
          },
        },
      ],
      async read(db) {
        const list = await rows(
          db,
          sql`SELECT m.name AS model, e.* FROM alias_events e JOIN models m ON m.id = e.model_id ORDER BY e.id`,
        );
        const out = new Map<string, RowState>();
        for (const [k, r] of ordinals(list, (r) => `${String(r.model)}:${String(r.alias)}`))
          out.set(k, {
            ...r,
            from_version: num(r.from_version),
            to_version: num(r.to_version),
          });
        return out;
      },
    },
    {
      table: 'datasets',
      label: 'dataset',
      checked: ['name', 'uri', 'digest', 'licence', 'description', 'created_at', 'created_by'],
      unchecked: { id: SURROGATE },
      actions: ['dataset.create'],
      logged: (_e, c) => {
        const d = obj(c.dataset);
        return [
          {
            key: String(d.name),
            state: {
              name: d.name,
              uri: d.uri,
              digest: d.digest,
              licence: d.licence,
              description: d.description,
              created_at: d.createdAt,
              created_by: d.createdBy,
            },
          },
        ];
      },
      async read(db) {
        return mapRows(
          await rows(db, sql`SELECT * FROM datasets`),
          (r) => String(r.name),
          (r) => r,
        );
      },
    },
    {
      table: 'lineage_edges',
      label: 'lineage edge',
      checked: ['version', 'relation', 'target_kind', 'target', 'created_at'],
      unchecked: {
        id: SURROGATE,
        version_id: SURROGATE,
        target_dataset_id: `${SURROGATE} (compared as target)`,
        target_version_id: `${SURROGATE} (compared as target)`,
        target_uri: 'compared as target',
      },
      actions: ['version.create'],
      logged: (e, c) => {
        const version = versionOfSubject(e.subject);
        return ((c.lineage as Row[] | undefined) ?? []).map((l) => {
          const t = obj(l.target);
          return {
            key: next(version),
            state: {
              version,
              relation: l.relation,
              target_kind: t.kind,
              target: lineageTarget(t),
              created_at: e.time,
            },
          };
        });
      },
      async read(db) {
        const list = await rows(
          db,
          sql`SELECT m.name AS model, v.number, l.relation, l.target_kind, l.target_uri, l.created_at,
                     d.name AS dataset, tm.name AS tmodel, tv.number AS tnumber
              FROM lineage_edges l JOIN versions v ON v.id = l.version_id JOIN models m ON m.id = v.model_id
              LEFT JOIN datasets d ON d.id = l.target_dataset_id
              LEFT JOIN versions tv ON tv.id = l.target_version_id
              LEFT JOIN models tm ON tm.id = tv.model_id
              ORDER BY l.id`,
        );
        const out = new Map<string, RowState>();
        for (const [k, r] of ordinals(list, (r) => `${String(r.model)}@${String(r.number)}`))
          out.set(k, {
            version: `${String(r.model)}@${String(r.number)}`,
            relation: r.relation,
            target_kind: r.target_kind,
            target:
              r.target_kind === 'dataset'
                ? r.dataset
                : r.target_kind === 'version'
                  ? `${String(r.tmodel)}@${String(r.tnumber)}`
                  : r.target_uri,
            created_at: r.created_at,
          });
        return out;
      },
    },
    {
      table: 'evaluations',
      label: 'evaluation',
      checked: [
        'id',
        'version',
        'evaluator_id',
        'evaluator_version',
        'config',
        'status',
        'requested_by',
        'credential_id',
        'created_at',
        'finished_at',
        'metrics',
        'error',
      ],
      unchecked: {
        version_id: SURROGATE,
        started_at: 'set when a worker takes the job (lease bookkeeping, no event)',
        progress: 'moves while the evaluation runs (heartbeats, no event)',
        attempts: 'counts worker leases (no event)',
        lease_owner: 'job lease: which worker holds it (no event)',
        lease_expires_at: 'job lease expiry, renewed by heartbeats (no event)',
      },
      actions: [
        'evaluation.request',
        'evaluation.import',
        'evaluation.complete',
        'evaluation.fail',
      ],
      logged: (e, c, prev) => {
        const id = idOfSubject(e.subject);
        const p = prev(id) ?? {};
        const ev = obj(c.evaluator);
        const created = (status: string, finished: string | null): RowState => ({
          id,
          version: versionOfSubject(e.subject),
          evaluator_id: ev.id,
          evaluator_version: ev.version,
          config: c.config,
          status,
          requested_by: e.actor,
          credential_id: e.credential,
          created_at: e.time,
          finished_at: finished,
          metrics: c.metrics ?? {},
          error: null,
        });
        const state =
          e.action === 'evaluation.request'
            ? created('queued', null)
            : e.action === 'evaluation.import'
              ? created('succeeded', e.time)
              : e.action === 'evaluation.complete'
                ? {
                    ...p,
                    status: 'succeeded',
                    finished_at: e.time,
                    metrics: c.metrics,
                    error: null,
                  }
                : { ...p, status: 'failed', finished_at: e.time, error: c.error };
        return [{ key: id, state }];
      },
      async read(db) {
        return mapRows(
          await rows(
            db,
            sql`SELECT m.name AS model, v.number, e.* FROM evaluations e
                JOIN versions v ON v.id = e.version_id JOIN models m ON m.id = v.model_id`,
          ),
          (r) => String(r.id),
          (r) => ({
            ...r,
            version: `${String(r.model)}@${String(r.number)}`,
            // Running is a lease on a queued evaluation, not a logged state.
            status: r.status === 'running' ? 'queued' : r.status,
            config: json(r.config),
            metrics: json(r.metrics),
          }),
        );
      },
    },
    {
      table: 'findings',
      label: 'finding',
      checked: [
        'evaluation_id',
        'version',
        'rule_id',
        'severity',
        'title',
        'file',
        'member',
        'byte_offset',
        'evidence',
        'refs',
        'status',
        'created_at',
      ],
      unchecked: { id: SURROGATE, version_id: SURROGATE },
      actions: ['evaluation.complete', 'evaluation.import'],
      logged: (e, c) => {
        const id = idOfSubject(e.subject);
        const version = versionOfSubject(e.subject);
        return ((c.findings as Row[] | undefined) ?? []).map((f) => {
          const loc = obj(f.location);
          return {
            key: next(id),
            state: {
              evaluation_id: id,
              version,
              rule_id: f.ruleId,
              severity: f.severity,
              title: f.title,
              file: loc.file,
              member: loc.member ?? null,
              byte_offset: loc.offset ?? null,
              evidence: f.evidenceDigest,
              refs: f.referencesDigest,
              status: 'open',
              created_at: e.time,
            },
          };
        });
      },
      async read(db) {
        const list = await rows(
          db,
          sql`SELECT m.name AS model, v.number, f.* FROM findings f
              JOIN versions v ON v.id = f.version_id JOIN models m ON m.id = v.model_id ORDER BY f.id`,
        );
        const out = new Map<string, RowState>();
        for (const [k, r] of ordinals(list, (r) => String(r.evaluation_id)))
          out.set(k, {
            ...r,
            version: `${String(r.model)}@${String(r.number)}`,
            byte_offset: num(r.byte_offset),
            evidence: sha(String(r.evidence)),
            refs: sha(String(r.refs)),
          });
        return out;
      },
    },
    {
      table: 'gate_decisions',
      label: 'gate decision',
      checked: [
        'id',
        'model',
        'version',
        'digest',
        'alias',
        'kind',
        'request_id',
        'policies',
        'engine',
        'facts',
        'facts_digest',
        'outcome',
        'waivers',
        'moved',
        'decided_by',
        'credential',
        'at',
      ],
      unchecked: { model_id: SURROGATE },
      actions: ['gate.decision', 'gate.cleared', 'gate.flagged'],
      logged: (e, c) => [
        {
          key: String(c.id),
          state: {
            id: c.id,
            model: c.model,
            version: c.version,
            digest: c.digest,
            alias: c.alias,
            kind: c.kind,
            request_id: c.requestId ?? null,
            policies: c.policiesDigest,
            engine: c.engine,
            // The facts snapshot is logged by its digest: the row's must hash to it.
            facts: c.factsDigest,
            facts_digest: c.factsDigest,
            outcome: c.outcome,
            waivers: c.waivers,
            moved: c.moved === true ? 1 : c.moved === false ? 0 : c.moved,
            decided_by: e.actor,
            credential: e.credential,
            at: e.time,
          },
        },
      ],
      async read(db) {
        return mapRows(
          await rows(
            db,
            sql`SELECT m.name AS model, d.* FROM gate_decisions d JOIN models m ON m.id = d.model_id`,
          ),
          (r) => String(r.id),
          (r) => ({
            ...r,
            id: num(r.id),
            version: num(r.version),
            request_id: num(r.request_id),
            policies: sha(String(r.policies)),
            facts: sha(String(r.facts)),
            waivers: json(r.waivers),
            moved: num(r.moved),
          }),
        );
      },
    },
    {
      table: 'promotion_requests',
      label: 'promotion request',
      checked: [
        'id',
        'model',
        'version',
        'alias',
        'requested_by',
        'credential',
        'requested_at',
        'state',
        'closed_at',
        'decision_id',
      ],
      unchecked: { model_id: SURROGATE },
      actions: [
        'promotion.request',
        'promotion.promoted',
        'promotion.denied',
        'promotion.rejected',
        'promotion.superseded',
        'promotion.withdrawn',
        'promotion.pending',
        'gate.decision',
      ],
      logged: (e, c, prev) => {
        if (e.action === 'gate.decision') {
          // A decision taken for a request is the request's latest.
          if (c.requestId === null || c.requestId === undefined || c.kind === 'recheck') return [];
          const key = String(c.requestId);
          return [{ key, state: { ...(prev(key) ?? {}), decision_id: c.id } }];
        }
        const key = String(c.id);
        if (e.action === 'promotion.request')
          return [
            {
              key,
              state: {
                id: c.id,
                model: c.model,
                version: c.version,
                alias: c.alias,
                requested_by: e.actor,
                credential: e.credential,
                requested_at: e.time,
                state: 'pending',
                closed_at: null,
                decision_id: null,
              },
            },
          ];
        if (typeof c.state !== 'string') return [];
        const p = prev(key) ?? {};
        return [
          {
            key,
            state: {
              ...p,
              state: c.state,
              closed_at: c.state === 'pending' ? (p.closed_at ?? null) : e.time,
              ...(c.decisionId !== undefined &&
                c.decisionId !== null && { decision_id: c.decisionId }),
            },
          },
        ];
      },
      async read(db) {
        return mapRows(
          await rows(
            db,
            sql`SELECT m.name AS model, r.* FROM promotion_requests r JOIN models m ON m.id = r.model_id`,
          ),
          (r) => String(r.id),
          (r) => ({
            ...r,
            id: num(r.id),
            version: num(r.version),
            decision_id: num(r.decision_id),
          }),
        );
      },
    },
    {
      table: 'promotion_reviews',
      label: 'promotion review',
      checked: [
        'request_id',
        'reviewer',
        'roles',
        'teams',
        'decision',
        'comment',
        'credential',
        'at',
      ],
      unchecked: { id: SURROGATE },
      actions: ['promotion.approve', 'promotion.reject'],
      logged: (e, c) => [
        {
          key: `${String(c.id)}/${e.actor}`,
          state: {
            request_id: c.id,
            reviewer: e.actor,
            roles: c.roles,
            teams: c.teams,
            decision: c.decision,
            comment: c.comment,
            credential: e.credential,
            at: e.time,
          },
        },
      ],
      async read(db) {
        return mapRows(
          await rows(db, sql`SELECT * FROM promotion_reviews`),
          (r) => `${String(r.request_id)}/${String(r.reviewer)}`,
          (r) => ({
            ...r,
            request_id: num(r.request_id),
            roles: json(r.roles),
            teams: json(r.teams),
          }),
        );
      },
    },
    {
      table: 'review_withdrawals',
      label: 'withdrawn rejection',
      checked: ['review', 'withdrawn_by', 'credential', 'comment', 'override', 'at'],
      unchecked: { id: SURROGATE, review_id: `${SURROGATE} (compared as review)` },
      actions: ['promotion.rejection-withdrawn'],
      logged: (e, c) => {
        const review = `${String(c.id)}/${String(c.reviewer)}`;
        return [
          {
            key: review,
            state: {
              review,
              withdrawn_by: c.withdrawnBy,
              credential: e.credential,
              comment: c.comment,
              override: c.override === true ? 1 : c.override === false ? 0 : c.override,
              at: e.time,
            },
          },
        ];
      },
      async read(db) {
        return mapRows(
          await rows(
            db,
            sql`SELECT r.request_id, r.reviewer, w.* FROM review_withdrawals w
                JOIN promotion_reviews r ON r.id = w.review_id`,
          ),
          (r) => `${String(r.request_id)}/${String(r.reviewer)}`,
          (r) => ({
            ...r,
            review: `${String(r.request_id)}/${String(r.reviewer)}`,
            override: num(r.override),
          }),
        );
      },
    },
    {
      table: 'waivers',
      label: 'waiver',
      checked: [
        'model',
        'version',
        'finding_rule',
        'rule',
        'justification',
        'approved_by',
        'credential',
        'created_at',
        'expires_at',
        'revoked_at',
        'revoked_by',
        'revoked_credential',
      ],
      unchecked: { id: SURROGATE, model_id: SURROGATE },
      actions: ['waiver.create', 'waiver.revoke'],
      logged: (e, c, prev) => {
        const key = `${String(c.model)}/${String(c.id)}`;
        if (e.action === 'waiver.revoke')
          return [
            {
              key,
              state: {
                ...(prev(key) ?? {}),
                revoked_at: e.time,
                revoked_by: e.actor,
                revoked_credential: e.credential,
              },
            },
          ];
        return [
          {
            key,
            state: {
              model: c.model,
              version: c.version,
              finding_rule: c.findingRule,
              rule: c.rule,
              justification: c.justification,
              approved_by: c.approvedBy,
              credential: e.credential,
              created_at: c.createdAt,
              expires_at: c.expiresAt,
              revoked_at: c.revokedAt ?? null,
              revoked_by: c.revokedBy ?? null,
              revoked_credential: null,
            },
          },
        ];
      },
      async read(db) {
        return mapRows(
          await rows(
            db,
            sql`SELECT m.name AS model, w.* FROM waivers w JOIN models m ON m.id = w.model_id`,
          ),
          (r) => `${String(r.model)}/${String(r.id)}`,
          (r) => ({ ...r, version: num(r.version) }),
        );
      },
    },
    {
      table: 'attestations',
      label: 'attestation',
      checked: [
        'model',
        'version',
        'kind',
        'ref',
        'predicate_type',
        'envelope',
        'envelope_digest',
        'created_at',
      ],
      unchecked: { id: SURROGATE, model_id: SURROGATE },
      actions: ['attestation.create'],
      logged: (e, c) => {
        const key = versionOfSubject(e.subject);
        const at = key.lastIndexOf('@');
        return [
          {
            key: `${key}/${idOfSubject(e.subject)}`,
            state: {
              model: key.slice(0, at),
              version: Number(key.slice(at + 1)),
              kind: c.kind,
              ref: c.ref,
              predicate_type: c.predicateType,
              // The envelope is logged by its digest: the row's must hash to it.
              envelope: c.envelopeDigest,
              envelope_digest: c.envelopeDigest,
              created_at: e.time,
            },
          },
        ];
      },
      async read(db) {
        return mapRows(
          await rows(
            db,
            sql`SELECT m.name AS model, a.* FROM attestations a JOIN models m ON m.id = a.model_id`,
          ),
          (r) => `${String(r.model)}@${String(r.version)}/${String(r.id)}`,
          (r) => {
            let envelope: string;
            try {
              envelope = sha(canonicalize(json(r.envelope)));
            } catch {
              envelope = 'unreadable';
            }
            return { ...r, version: num(r.version), envelope };
          },
        );
      },
    },
    {
      table: 'identities',
      label: 'identity',
      checked: [
        'kind',
        'name',
        'created_at',
        'owner',
        'purpose',
        'created_by',
        'created_credential',
        'password_hash',
        'expires_at',
        'sso_issuer',
        'sso_subject',
      ],
      unchecked: { id: SURROGATE },
      actions: [
        'identity.create',
        'identity.password.set',
        'identity.password.remove',
        'token.create',
      ],
      logged: (e, c, prev) => {
        if (e.action === 'token.create') {
          // The server's own token.create (first admin, fixtures) creates its identity if new.
          if (!Array.isArray(c.roles)) return [];
          const key = String(c.identity);
          const p = prev(key);
          return [
            {
              key,
              state: p ?? {
                kind: c.kind ?? 'user',
                name: c.identity,
                created_at: e.time,
                owner: null,
                purpose: null,
                created_by: null,
                created_credential: null,
                password_hash: false,
                expires_at: null,
                sso_issuer: null,
                sso_subject: null,
              },
            },
          ];
        }
        const key = e.subject.slice('identity:'.length);
        if (e.action !== 'identity.create')
          return [{ key, state: { ...(prev(key) ?? {}), password_hash: c.password === true } }];
        const sso = obj(c.sso);
        return [
          {
            key,
            state: {
              kind: c.kind,
              name: c.name,
              created_at: e.time,
              owner: c.owner ?? null,
              purpose: c.purpose ?? null,
              created_by: e.actor,
              created_credential: e.credential,
              // Whether a password is set: the hash itself is never logged.
              password_hash: c.password === true,
              expires_at: c.expiresAt ?? null,
              sso_issuer: sso.issuer ?? null,
              sso_subject: sso.subject ?? null,
            },
          },
        ];
      },
      async read(db) {
        return mapRows(
          await rows(db, sql`SELECT * FROM identities`),
          (r) => String(r.name),
          (r) => ({ ...r, password_hash: r.password_hash !== null }),
        );
      },
    },
    grantTable('identity_roles', 'role', 'role grant', 'roles'),
    grantTable('team_members', 'team', 'team membership', 'teams'),
    {
      table: 'tokens',
      label: 'token',
      checked: [
        'id',
        'identity',
        'token_hash',
        'name',
        'created_at',
        'revoked_at',
        'expires_at',
        'rotated_from',
        'scopes',
        'created_by',
        'created_credential',
        'revoked_by',
        'revoked_credential',
      ],
      unchecked: {
        identity_id: SURROGATE,
        last_used_at: 'changes on every use of the token (no event: it would double the log)',
        last_used_from: 'changes on every use of the token (no event: it would double the log)',
      },
      actions: [
        'token.create',
        'token.revoke',
        'token.expire',
        'identity.password.set',
        'identity.password.remove',
      ],
      logged: (e, c, prev) => {
        if (e.action === 'token.create') {
          const t = obj(c.token);
          const server = Array.isArray(c.roles);
          return [
            {
              key: String(t.id),
              state: {
                id: t.id,
                identity: c.identity,
                token_hash: t.hashDigest,
                name: t.name,
                created_at: e.time,
                revoked_at: null,
                expires_at: t.expiresAt ?? null,
                rotated_from: t.rotatedFrom ?? null,
                scopes: t.scopes ?? null,
                created_by: server ? null : e.actor,
                created_credential: server ? null : e.credential,
                revoked_by: null,
                revoked_credential: null,
              },
            },
          ];
        }
        const revoke = (id: string): LoggedChange => ({
          key: id,
          state: {
            ...(prev(id) ?? {}),
            revoked_at: e.time,
            revoked_by: e.actor,
            revoked_credential: e.credential,
          },
        });
        if (e.action === 'token.revoke') return [revoke(String(c.id))];
        if (e.action === 'token.expire') {
          const id = String(c.id);
          return [{ key: id, state: { ...(prev(id) ?? {}), expires_at: c.expiresAt } }];
        }
        return ((c.revokedTokens as unknown[] | undefined) ?? []).map((id) => revoke(String(id)));
      },
      async read(db) {
        return mapRows(
          await rows(
            db,
            sql`SELECT i.name AS identity, t.* FROM tokens t JOIN identities i ON i.id = t.identity_id`,
          ),
          (r) => String(r.id),
          (r) => ({
            ...r,
            // The hash is logged by its own digest: the stored hash must hash to it.
            token_hash: sha(String(r.token_hash)),
            scopes: r.scopes === null ? null : json(r.scopes),
          }),
        );
      },
    },
    {
      table: 'gate_policies',
      label: 'gate policy',
      checked: [
        'name',
        'version',
        'digest',
        'document',
        'source',
        'published_by',
        'published_credential',
        'published_at',
      ],
      unchecked: {},
      actions: ['gate.policy.publish'],
      logged: (e, c) => [
        {
          key: `${String(c.name)}@${String(c.version)}`,
          state: {
            name: c.name,
            version: c.version,
            digest: c.digest,
            document: c.document,
            source: c.sourceDigest,
            published_by: e.actor,
            published_credential: e.credential,
            published_at: e.time,
          },
        },
      ],
      async read(db) {
        return mapRows(
          await rows(db, sql`SELECT * FROM gate_policies`),
          (r) => `${String(r.name)}@${String(r.version)}`,
          (r) => ({
            ...r,
            version: num(r.version),
            document: json(r.document),
            source: sha(String(r.source)),
          }),
        );
      },
    },
    {
      table: 'authz_policies',
      label: 'API policy',
      checked: ['id', 'text', 'digest', 'created_at', 'created_by', 'created_credential'],
      unchecked: {},
      actions: ['authz.policy.put', 'authz.policy.remove'],
      logged: (e, c) => [
        {
          key: String(c.id),
          state:
            e.action === 'authz.policy.remove'
              ? null
              : {
                  id: c.id,
                  text: c.text,
                  digest: c.digest,
                  created_at: e.time,
                  created_by: e.actor,
                  created_credential: e.credential,
                },
        },
      ],
      async read(db) {
        return mapRows(
          await rows(db, sql`SELECT * FROM authz_policies`),
          (r) => String(r.id),
          (r) => r,
        );
      },
    },
  ];
}

/** Reads every governed table's rows, by table name. */
export async function readGovernedRows(
  db: Kysely<DB>,
  tables: readonly GovernedTableReader[],
): Promise<Map<string, Map<string, RowState>>> {
  const out = new Map<string, Map<string, RowState>>();
  for (const t of tables) out.set(t.table, await t.read(db));
  return out;
}
