import { createPublicKey } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { subjects } from '../../audit/subjects.js';
import { ModelgateError } from '../../core/errors.js';
import { WindowLimit } from '../../core/rate-limit.js';
import { annexIvDraft } from '../../evidence/annex-iv.js';
import type { StoredAttestation } from '../../evidence/attestation-store.js';
import { BUNDLE_MEDIA_TYPE, type EvidenceBundle, EXPORT_PREDICATE } from '../../evidence/bundle.js';
import {
  complianceReport,
  evidenceOf,
  portfolioMarkdown,
  portfolioReport,
  reportHtml,
  reportMarkdown,
} from '../../evidence/compliance.js';
import { IN_TOTO_PAYLOAD_TYPE, verifyEnvelope } from '../../evidence/dsse.js';
import { mlBom } from '../../evidence/ml-bom.js';
import { reportOscal } from '../../evidence/oscal.js';
import { parseStatement } from '../../evidence/statement.js';
import { AliasName, errorResponses, Name, VersionRef } from '../schemas.js';
import type { Api, RouteOpts } from './common.js';

/** The attestation key and the signed statements about a version. */
export async function attestationRoutes(app: Api, opts: RouteOpts) {
  const { attestations, attestationKey } = opts.deps;
  const publicKey = createPublicKey(attestationKey)
    .export({ type: 'spki', format: 'pem' })
    .toString();

  // What the report routes read about a version: its attestations with their statements
  // decoded (our own stored envelopes: verified by `evidence verify`, not here), its direct
  // lineage and the dataset records the lineage names.
  const decoded = (items: StoredAttestation[]) =>
    items.map((a) => ({
      id: a.id,
      kind: a.kind,
      ref: a.ref,
      predicateType: a.predicateType,
      predicate: (
        JSON.parse(Buffer.from(a.envelope.payload, 'base64').toString('utf8')) as {
          predicate: Record<string, unknown>;
        }
      ).predicate,
    }));
  const lineageOf = async (model: string, version: number) => {
    const { registry } = opts.deps;
    const { edges } = await registry.lineage({ kind: 'version', model, version }, 'upstream', 1);
    const datasets = await Promise.all(
      edges.flatMap((e) =>
        e.target.kind === 'dataset'
          ? [registry.getDataset(e.target.dataset).catch(() => undefined)]
          : [],
      ),
    );
    return { edges, datasets: datasets.filter((d): d is NonNullable<typeof d> => d !== undefined) };
  };

  app.get(
    '/attestations/key',
    {
      config: { public: true },
      schema: {
        tags: ['evidence'],
        summary:
          "The server's attestation public key (Ed25519, PEM) and its key id: what verifies the DSSE envelopes it signs",
        response: {
          200: Type.Object({
            keyid: Type.String(),
            algorithm: Type.String(),
            publicKey: Type.String(),
            evaluators: Type.Array(
              Type.Object({ name: Type.String(), keyid: Type.String(), publicKey: Type.String() }),
            ),
          }),
        },
      },
    },
    async () => ({
      keyid: opts.deps.attestor.keyid,
      algorithm: 'ed25519',
      publicKey,
      evaluators: opts.deps.evaluatorKeys.map((k) => ({
        name: k.name,
        keyid: k.keyid,
        publicKey: k.pem,
      })),
    }),
  );

  app.get(
    '/models/:model/versions/:ref/attestations',
    {
      config: { authz: { action: 'read', resource: 'version' } },
      schema: {
        tags: ['evidence'],
        summary:
          'Every signed in-toto statement about a version (evaluations as test-result, gate decisions as SLSA verification summaries, approvals and waivers), each a DSSE envelope, oldest first',
        params: Type.Object({ model: Name, ref: VersionRef }),
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({
                id: Type.Integer(),
                model: Type.String(),
                version: Type.Integer(),
                kind: Type.String(),
                ref: Type.String(),
                predicateType: Type.String(),
                envelope: Type.Object({
                  payload: Type.String(),
                  payloadType: Type.String(),
                  signatures: Type.Array(
                    Type.Object({ keyid: Type.Optional(Type.String()), sig: Type.String() }),
                  ),
                }),
                envelopeDigest: Type.String(),
                createdAt: Type.String(),
              }),
            ),
          }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const v =
        req.loaded.version ??
        (await opts.deps.registry.getVersion(req.params.model, req.params.ref));
      return { items: await attestations.forVersion(req.params.model, v.number) };
    },
  );

  // Each export appends an audit event and signs a checkpoint: a loop would grow the log.
  const exportLimit = new WindowLimit(
    opts.deps.exportsPerHour ?? 60,
    3_600_000,
    'evidence exports',
  );
  app.post(
    '/models/:model/versions/:ref/evidence-bundles',
    {
      config: { authz: { action: 'read', resource: 'version' } },
      schema: {
        tags: ['evidence'],
        summary:
          "Export a version's evidence bundle: its manifest, every attestation with an inclusion proof in the audit log, a signed list of what the export holds (logged too), the signed checkpoint and the public keys; verifiable offline with `modelgate evidence verify`",
        params: Type.Object({ model: Name, ref: VersionRef }),
        response: { 200: Type.Unknown(), ...errorResponses(400, 401, 404, 409, 429) },
      },
    },
    async (req) => {
      exportLimit.take(req.actor.identity);
      const { audit, auditStore, attestor } = opts.deps;
      const v =
        req.loaded.version ??
        (await opts.deps.registry.getVersion(req.params.model, req.params.ref));
      const model = req.params.model;
      const items = await attestations.forVersion(model, v.number);
      // The attestations the log records about this version, not only the rows: a row deleted
      // behind the log must stop the export, not yield a smaller bundle that verifies.
      const prefix = `${subjects.attestation(model, v.number, 0).slice(0, -1)}`;
      const held = new Set(items.map((a) => a.id));
      for (const e of await auditStore.eventsAbout(
        { equals: [], prefixes: [prefix] },
        { limit: 1_000_000 },
      )) {
        if (e.action !== 'attestation.create') continue;
        const c = JSON.parse(e.content) as { id?: unknown; kind?: unknown; ref?: unknown };
        const id = Number(e.subject.slice(prefix.length));
        if (!held.has(id))
          throw new ModelgateError(
            'EVIDENCE_INCOMPLETE',
            `attestation ${id} (${String(c.kind)} ${String(c.ref)}) about ${model}@${v.number} is in the audit log (event ${e.seq}) but missing from the database: the bundle would be incomplete; run modelgate audit verify`,
            { attestation: id, event: e.seq },
          );
      }
      const listed = items.map((a) => ({ id: a.id, kind: a.kind, digest: a.envelopeDigest }));
      const version = {
        model,
        number: v.number,
        digest: v.digest,
        // Signed in the export beside the OpenSSF subject: it also binds the paths.
        layoutDigest: v.layoutDigest,
        files: (v.files ?? []).map((f) => ({ path: f.path, size: f.size, digest: f.digest })),
      };
      const exported = attestor.about(
        { model, version: v.number, digest: v.digest },
        EXPORT_PREDICATE,
        {
          version,
          attestations: listed,
          exportedBy: req.actor.identity,
          // Signed: a reader of the bundle can tell how old what it says is.
          exportedAt: new Date().toISOString(),
        },
      );
      await attestations.recordExport(
        {
          model,
          version: v.number,
          digest: v.digest,
          statement: exported.digest,
          attestations: listed.map((a) => a.digest),
        },
        req.actor,
      );
      // Sequence everything written so far and sign a checkpoint covering it.
      const cp = await audit.signLatest();
      if (!cp) throw new Error('the audit log is empty after an export was logged');
      const entry = async (
        subject: string,
        match: (content: Record<string, unknown>) => boolean,
      ) => {
        const events = await auditStore.eventsAbout(
          { equals: [subject], prefixes: [] },
          { limit: 50, newestFirst: true },
        );
        const e = events.find((x) => match(JSON.parse(x.content) as Record<string, unknown>));
        if (!e) throw new Error(`no audit event for ${subject}`);
        const { proof } = await audit.inclusionProof(e.seq, cp.size);
        return {
          index: e.seq,
          leaf: e.leaf,
          content: e.content,
          proof: proof.map((p) => p.toString('base64')),
        };
      };
      const bundle: EvidenceBundle = {
        mediaType: BUNDLE_MEDIA_TYPE,
        version,
        attestations: await Promise.all(
          items.map(async (a) => ({
            id: a.id,
            kind: a.kind,
            ref: a.ref,
            envelope: a.envelope,
            log: await entry(subjects.attestation(model, v.number, a.id), (c) => c.id === a.id),
          })),
        ),
        export: {
          envelope: exported.envelope,
          log: await entry(
            subjects.exportOf(model, v.number),
            (c) => c.statement === exported.digest,
          ),
        },
        checkpoint: await audit.withCosignatures(cp),
        keys: { log: audit.vkey, attestation: publicKey },
      };
      return bundle;
    },
  );

  app.get(
    '/models/:model/versions/:ref/ml-bom',
    {
      config: { authz: { action: 'read', resource: 'version' } },
      schema: {
        tags: ['evidence'],
        summary:
          "A version's CycloneDX 1.6 ML-BOM (JSON): the model component with its digest, files and model card (datasets from lineage, evaluation metrics as quantitative analysis), datasets and base models",
        params: Type.Object({ model: Name, ref: VersionRef }),
        response: { 200: Type.Unknown(), ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) => {
      const { registry, evaluations } = opts.deps;
      const model = req.loaded.model ?? (await registry.getModel(req.params.model));
      const version =
        req.loaded.version ?? (await registry.getVersion(req.params.model, req.params.ref));
      const { edges, datasets } = await lineageOf(model.name, version.number);
      const bom = mlBom({
        model,
        version,
        lineage: edges,
        datasets,
        evaluations: await evaluations.listForVersion(model.name, version.number),
        tool: { name: 'modelgate', version: opts.deps.version ?? 'dev' },
        now: new Date(),
      });
      return reply.type('application/vnd.cyclonedx+json; version=1.6').send(bom);
    },
  );

  app.get(
    '/models/:model/versions/:ref/compliance-report',
    {
      config: { authz: { action: 'read', resource: 'version' } },
      schema: {
        tags: ['evidence'],
        summary:
          "A version's evidence mapped to control frameworks (NIST AI RMF 1.0, ISO/IEC 42001 Annex A, EU AI Act, NIST CSF 2.0, and the operator's): each control with its evidence and links to the attestations, or what is missing; coverage and gaps, never a statement of compliance. JSON, Markdown, printable HTML or OSCAL assessment-results",
        params: Type.Object({ model: Name, ref: VersionRef }),
        querystring: Type.Object(
          {
            framework: Type.Optional(Type.String({ maxLength: 512 })),
            format: Type.Optional(
              Type.Union([
                Type.Literal('json'),
                Type.Literal('markdown'),
                Type.Literal('html'),
                Type.Literal('oscal'),
              ]),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Unknown(), ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) => {
      const { registry, evaluations, auditStore, catalog } = opts.deps;
      const model = req.loaded.model ?? (await registry.getModel(req.params.model));
      const v = req.loaded.version ?? (await registry.getVersion(req.params.model, req.params.ref));
      const [items, evals, lineage, checkpoint] = await Promise.all([
        attestations.forVersion(model.name, v.number),
        evaluations.listForVersion(model.name, v.number),
        registry.lineage({ kind: 'version', model: model.name, version: v.number }, 'upstream', 1),
        auditStore.latestCheckpoint(),
      ]);
      const evidence = evidenceOf({
        model,
        version: { number: v.number, digest: v.digest, cardFields: v.card.fields },
        attestations: decoded(items),
        evaluators: Object.fromEntries(evals.map((e) => [e.id, e.evaluator.id])),
        lineageEdges: lineage.edges.length,
        checkpoint,
      });
      let report: ReturnType<typeof complianceReport>;
      try {
        report = complianceReport(
          catalog,
          { model: model.name, version: v.number, digest: v.digest },
          evidence,
          {
            ...(req.query.framework && { frameworks: req.query.framework.split(',') }),
            now: new Date(),
          },
        );
      } catch (e) {
        throw new ModelgateError('VALIDATION_FAILED', (e as Error).message);
      }
      const name = `${model.name}-${v.number}-evidence`;
      if (req.query.format === 'markdown')
        return reply
          .type('text/markdown; charset=utf-8')
          .header('content-disposition', `attachment; filename="${name}.md"`)
          .send(reportMarkdown(report));
      if (req.query.format === 'html')
        return reply
          .type('text/html; charset=utf-8')
          .header('content-disposition', `inline; filename="${name}.html"`)
          .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
          .send(reportHtml(report));
      if (req.query.format === 'oscal')
        return reply.type('application/oscal.ar+json').send(
          reportOscal(report, {
            attestationDigests: Object.fromEntries(
              items.map((a) => [String(a.id), a.envelopeDigest]),
            ),
            tool: `modelgate ${opts.deps.version ?? 'dev'}`,
          }),
        );
      return report;
    },
  );

  app.get(
    '/compliance/portfolio',
    {
      config: { authz: { action: 'read', resource: 'registry' } },
      schema: {
        tags: ['evidence'],
        summary:
          "Evidence coverage of every model (its version under the alias, production by default, else its latest) per framework, with totals and each model's missing controls; JSON or Markdown",
        querystring: Type.Object(
          {
            alias: Type.Optional(AliasName),
            framework: Type.Optional(Type.String({ maxLength: 512 })),
            format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('markdown')])),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Unknown(), ...errorResponses(400, 401) },
      },
    },
    async (req, reply) => {
      const alias = req.query.alias ?? 'production';
      const [inputs, checkpoint] = await Promise.all([
        attestations.portfolio(alias),
        opts.deps.auditStore.latestCheckpoint(),
      ]);
      let report: ReturnType<typeof portfolioReport>;
      try {
        report = portfolioReport(
          opts.deps.catalog,
          inputs.map((i) => ({ ...i, checkpoint })),
          {
            alias,
            ...(req.query.framework && { frameworks: req.query.framework.split(',') }),
            now: new Date(),
          },
        );
      } catch (e) {
        throw new ModelgateError('VALIDATION_FAILED', (e as Error).message);
      }
      if (req.query.format === 'markdown')
        return reply.type('text/markdown; charset=utf-8').send(portfolioMarkdown(report));
      return report;
    },
  );

  app.get(
    '/models/:model/versions/:ref/annex-iv',
    {
      config: { authz: { action: 'read', resource: 'version' } },
      schema: {
        tags: ['evidence'],
        summary:
          'A draft of the EU AI Act Annex IV technical documentation for a version (Markdown): what the record holds, each item naming its attestation, and every part the record cannot supply marked as such',
        params: Type.Object({ model: Name, ref: VersionRef }),
        response: { 200: Type.String(), ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) => {
      const { registry, evaluations } = opts.deps;
      const model = req.loaded.model ?? (await registry.getModel(req.params.model));
      const v = req.loaded.version ?? (await registry.getVersion(req.params.model, req.params.ref));
      const [items, evals, lineage, versions, history] = await Promise.all([
        attestations.forVersion(model.name, v.number),
        evaluations.listForVersion(model.name, v.number),
        lineageOf(model.name, v.number),
        registry.listVersions(model.name, {}, { limit: 500 }),
        registry.aliasHistory(model.name, undefined, { limit: 500 }),
      ]);
      const text = annexIvDraft({
        model,
        version: v,
        versions: [...versions.items].reverse(),
        lineage: lineage.edges,
        datasets: lineage.datasets,
        evaluations: evals,
        attestations: decoded(items),
        aliasEvents: history.items
          .filter((e) => e.toVersion === v.number || e.fromVersion === v.number)
          .reverse(),
        now: new Date(),
      });
      return reply
        .type('text/markdown; charset=utf-8')
        .header(
          'content-disposition',
          `attachment; filename="${model.name}-${v.number}-annex-iv.md"`,
        )
        .send(text);
    },
  );

  app.post(
    '/models/:model/versions/:ref/attestations',
    {
      config: { authz: { action: 'runEvaluation', resource: 'version' } },
      schema: {
        tags: ['evidence'],
        summary:
          "Keep an external evaluator's signed in-toto statement about this version (a DSSE envelope signed with a key the operator registered in MODELGATE_EVALUATOR_KEYS); its signature is kept as sent and the signer's key is logged with it",
        params: Type.Object({ model: Name, ref: VersionRef }),
        body: Type.Object(
          {
            envelope: Type.Object(
              {
                payload: Type.String({ maxLength: 4 * 1024 * 1024 }),
                payloadType: Type.String({ maxLength: 256 }),
                signatures: Type.Array(
                  Type.Object(
                    {
                      keyid: Type.Optional(Type.String({ maxLength: 256 })),
                      sig: Type.String({ maxLength: 1024 }),
                    },
                    { additionalProperties: false },
                  ),
                  { minItems: 1, maxItems: 16 },
                ),
              },
              { additionalProperties: false },
            ),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Unknown(), ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) => {
      const v =
        req.loaded.version ??
        (await opts.deps.registry.getVersion(req.params.model, req.params.ref));
      const keys = opts.deps.evaluatorKeys;
      const refuse = (why: string): never => {
        throw new ModelgateError('VALIDATION_FAILED', why);
      };
      if (keys.length === 0)
        refuse('no external evaluator keys are registered (MODELGATE_EVALUATOR_KEYS)');
      let verified: ReturnType<typeof verifyEnvelope>;
      try {
        verified = verifyEnvelope(
          req.body.envelope,
          keys.map((k) => ({ key: k.key })),
        );
      } catch (e) {
        return refuse(
          `the envelope does not verify with a registered evaluator key: ${(e as Error).message}`,
        );
      }
      if (verified.payloadType !== IN_TOTO_PAYLOAD_TYPE)
        refuse(`payloadType must be ${IN_TOTO_PAYLOAD_TYPE}, not ${verified.payloadType}`);
      let statement: ReturnType<typeof parseStatement>;
      try {
        statement = parseStatement(verified.payload);
      } catch (e) {
        return refuse((e as Error).message);
      }
      if (!statement.subject.some((x) => `sha256:${x.digest.sha256}` === v.digest))
        refuse(`the statement is not about ${req.params.model}@${v.number} (${v.digest})`);
      const signer = keys.find((k) => k.keyid === verified.signedBy[0])!;
      const stored = await attestations.addExternal(
        {
          model: req.params.model,
          version: v.number,
          digest: v.digest,
          predicateType: statement.predicateType,
          envelope: req.body.envelope,
          signer: { name: signer.name, keyid: signer.keyid, pem: signer.pem },
        },
        req.actor,
      );
      return reply.status(201).send(stored);
    },
  );
}
