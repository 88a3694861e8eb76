import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditLog, loadOrCreateLogKey } from '../audit/audit-log.js';
import { ArtifactScanEvaluator } from '../evaluators/artifact-scan/artifact-scan-evaluator.js';
import { EvaluationRunner, SYSTEM_ACTOR } from '../evaluators/evaluation-runner.js';
import { EgressPolicy } from '../evaluators/redteam/egress.js';
import { RedteamEvaluator } from '../evaluators/redteam/redteam-evaluator.js';
import { attestorFor, loadOrCreateAttestationKey } from '../evidence/attestor.js';
import { loadCatalog } from '../evidence/compliance.js';
import { loadEvaluatorKeys } from '../evidence/evaluator-keys.js';
import { loadOidcConfig, OidcFederation } from '../identity/oidc.js';
import { issueToken } from '../identity/tokens.js';
import type { Authorizer } from '../policy/authz/authorizer.js';
import { BUILTIN_POLICIES } from '../policy/authz/builtin-policies.js';
import { readPolicyFolder } from '../policy/authz/policy-files.js';
import { PolicySet } from '../policy/authz/policy-set.js';
import { compilePolicy, parsePolicyDocument } from '../policy/gates/policy-document.js';
import { DEFAULT_GATE_BUDGET, GateSandbox } from '../policy/gates/sandbox.js';
import { shippedPolicies } from '../policy/gates/shipped-pack.js';
import { FsBlobStore } from '../registry/fs-blob-store.js';
import { RegistryService } from '../registry/registry-service.js';
import { type Database, openDatabase } from '../storage/database.js';
import { KyselyAttestationStore } from '../storage/kysely-attestation-store.js';
import { KyselyAuditStore } from '../storage/kysely-audit-store.js';
import { KyselyAuthzPolicyStore } from '../storage/kysely-authz-policy-store.js';
import { KyselyEvaluationStore } from '../storage/kysely-evaluation-store.js';
import { KyselyGatePolicyStore } from '../storage/kysely-gate-policy-store.js';
import { KyselyGateStore } from '../storage/kysely-gate-store.js';
import { KyselyIdentityStore } from '../storage/kysely-identity-store.js';
import { KyselyRegistryStore } from '../storage/kysely-registry-store.js';
import { migrate } from '../storage/migrations.js';
import { sharedSecret } from '../storage/server-settings.js';
import { GateRechecker } from '../workflow/rechecker.js';
import { type AppDeps, buildApp } from './app.js';
import type { ServerConfig } from './config.js';
import { secureDataFolder } from './data-folder.js';

/** The wired application and the resources it owns. */
export interface Composed {
  app: Awaited<ReturnType<typeof buildApp>>;
  deps: AppDeps;
  database: Database;
  /** Set when this start created the first admin token (shown once). */
  bootstrapToken: { secret: string; file: string | null; generated: boolean } | undefined;
  close(): Promise<void>;
}

/**
 * The composition root: opens the database (migrating it), the blob store, creates the
 * first admin token on an empty database, and builds the HTTP app.
 */
export async function compose(
  config: ServerConfig,
  opts: {
    logger?: AppDeps['logger'];
    database?: Database;
    startWorker?: boolean;
    authFailureLimit?: number;
    /** Replaces the built-in role policies (operators' policy sets; the bench's comparison). */
    authorizer?: Authorizer;
    /**
     * How soon changes made by another server process (grants, revocations, API policies) apply
     * here; default (and at most) 1 s for token lookups and 2 s for policies. Tests shorten it.
     */
    refreshMs?: number;
    /** The clock promotions, reviews and waivers see (tests let time pass for waivers). */
    gateClock?: () => Date;
  } = {},
): Promise<Composed> {
  // Before anything is written there: the folder holds the keys, the token file, the database.
  const tightened = secureDataFolder(config.dataDir);
  const database =
    opts.database ??
    openDatabase({
      dataDir: config.dataDir,
      ...(config.databaseUrl && { url: config.databaseUrl }),
    });
  try {
    await migrate(database);
    const attestationKey = loadOrCreateAttestationKey(
      config.attestationKeyFile ?? join(config.dataDir, 'attestation.key'),
      config.attestationKeyFile === undefined,
    );
    const attestor = attestorFor(attestationKey);
    const store = new KyselyRegistryStore(database, { attestor });
    const blobs = new FsBlobStore(join(config.dataDir, 'blobs'));
    const protectedAliases = new Set(config.protectedAliases);
    const registry = new RegistryService(store, blobs, undefined, protectedAliases);
    let bootstrapToken: Composed['bootstrapToken'];
    const t = issueToken(config.bootstrapToken);
    // Servers starting together on an empty database mint one token between them.
    if (
      (await store.countTokens()) === 0 &&
      (await store.createToken(
        // The first identity may also move production aliases (only approvers may).
        { name: 'admin', kind: 'user', roles: ['admin', 'approver'] },
        { id: t.id, hash: t.hash, name: 'initial admin token' },
        { initial: true },
      ))
    ) {
      let file: string | null = null;
      if (!config.bootstrapToken) {
        file = join(config.dataDir, 'initial-admin-token');
        writeFileSync(file, `${t.secret}\n`, { mode: 0o600, flag: 'w' });
      }
      bootstrapToken = { secret: t.secret, file, generated: !config.bootstrapToken };
    }
    const auditStore = new KyselyAuditStore(database);
    const audit = new AuditLog(
      auditStore,
      loadOrCreateLogKey(
        config.auditKeyFile ?? join(config.dataDir, 'audit-log.key'),
        config.auditOrigin,
        config.auditKeyFile === undefined,
      ),
      config.witnessKeys,
    );
    if (audit.origin !== config.auditOrigin && process.env.MODELGATE_AUDIT_ORIGIN)
      throw new Error(
        `the audit log key is for origin ${audit.origin}, but MODELGATE_AUDIT_ORIGIN says ${config.auditOrigin}`,
      );
    const evaluations = new KyselyEvaluationStore(database, { attestor });
    const gatePolicies = new KyselyGatePolicyStore(database);
    if (config.gatePolicyPack === 'shipped' && (await gatePolicies.list()).length === 0)
      for (const { text } of shippedPolicies()) {
        const c = compilePolicy(parsePolicyDocument(text));
        await gatePolicies.publish(
          { name: c.name, digest: c.digest, document: c.document, source: text },
          SYSTEM_ACTOR,
        );
      }
    const gates = new KyselyGateStore(database, {
      protectedAliases,
      attestor,
      ...(opts.gateClock && { now: opts.gateClock }),
    });
    const rechecker = new GateRechecker(
      gates,
      SYSTEM_ACTOR,
      (err) => runnerLog.error({ err }, 'gate re-check failed'),
      (r) => {
        if (r.flagged.length + r.demoted.length + r.cleared.length > 0)
          runnerLog.info({ recheck: r }, 'gate re-check changed alias status');
      },
    );
    const runnerLog = { info: () => {}, error: () => {} } as {
      info(o: object, m: string): void;
      error(o: object, m: string): void;
    };
    const runner = new EvaluationRunner(
      {
        store: evaluations,
        evaluators: [
          new ArtifactScanEvaluator(),
          new RedteamEvaluator(new EgressPolicy(config.allowedEndpoints), config.secret),
        ],
        getVersion: (model, version) => registry.getVersion(model, String(version)),
        localPath: (digest) => blobs.localPath(digest),
        log: runnerLog,
      },
      {
        leaseMs: config.jobLeaseMs,
        pollMs: config.jobPollMs,
        maxAttempts: 3,
        autoScan: config.autoScan,
      },
    );
    const deps: AppDeps = {
      // Shared by every server on this database, so a cursor from one is good on another.
      cursorKey: await sharedSecret(database.db, 'cursor-key'),
      registry,
      store,
      blobs,
      evaluations,
      runner,
      maxUploadBytes: config.maxUploadBytes,
      exportsPerHour: config.exportsPerHour,
      gateSandbox: new GateSandbox({ ...DEFAULT_GATE_BUDGET, ms: config.gateBudgetMs }),
      identities: new KyselyIdentityStore(database),
      audit,
      auditStore,
      gatePolicies,
      gates,
      rechecker,
      attestor,
      attestationKey,
      attestations: new KyselyAttestationStore(database),
      catalog: loadCatalog(config.controlCatalog),
      evaluatorKeys: loadEvaluatorKeys(config.evaluatorKeys),
      ...(config.oidcConfig && {
        federation: new OidcFederation(loadOidcConfig(config.oidcConfig)),
      }),
      ...(opts.authFailureLimit !== undefined && { authFailureLimit: opts.authFailureLimit }),
      trustedProxies: config.trustedProxies,
      policies: opts.authorizer
        ? PolicySet.fixed(opts.authorizer)
        : await PolicySet.open(
            {
              ...BUILTIN_POLICIES,
              ...(config.authzPolicies && readPolicyFolder(config.authzPolicies)),
            },
            new KyselyAuthzPolicyStore(database),
            opts.refreshMs,
          ),
      ...(opts.refreshMs !== undefined && { tokenCacheMs: opts.refreshMs }),
      ...(opts.logger !== undefined && { logger: opts.logger }),
    };
    const app = await buildApp(deps);
    for (const change of tightened)
      app.log.warn({ change }, 'tightened the permissions of the data folder');
    runnerLog.info = (o, m) => app.log.info(o, m);
    runnerLog.error = (o, m) => app.log.error(o, m);
    if (opts.startWorker ?? false) runner.start();
    rechecker.start(config.gateRecheckMs);
    // A checkpoint after each batch of appends: signed when the log has grown since the last.
    const checkpointer = setInterval(() => {
      audit
        .signLatest()
        .catch((err: unknown) => app.log.error({ err }, 'checkpoint signing failed'));
    }, config.checkpointIntervalMs);
    checkpointer.unref();
    return {
      app,
      deps,
      database,
      bootstrapToken,
      close: async () => {
        clearInterval(checkpointer);
        await rechecker.stop();
        await runner.stop();
        await app.close();
        await database.close();
      },
    };
  } catch (e) {
    // A database the caller handed in is the caller's to close.
    if (!opts.database) await database.close().catch(() => {});
    throw e;
  }
}
