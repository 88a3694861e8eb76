import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { canonicalize } from '../audit/canonical-json.js';
import { readOrCreateSecretFile } from '../core/secret-file.js';
import {
  type Envelope,
  ed25519Signer,
  IN_TOTO_PAYLOAD_TYPE,
  type Signer,
  signEnvelope,
} from './dsse.js';
import { type ResourceDescriptor, type Statement, statement, versionSubject } from './statement.js';

/** Predicate types Modelgate signs. Its own types are versioned; their JSON Schemas are in docs/predicates/. */
export const PREDICATE_TYPES = {
  testResult: 'https://in-toto.io/attestation/test-result/v0.1',
  provenance: 'https://slsa.dev/provenance/v1',
  verificationSummary: 'https://slsa.dev/verification_summary/v1',
  approval: 'https://modelgate.dev/attestation/approval/v1',
  waiver: 'https://modelgate.dev/attestation/waiver/v1',
} as const;

/** What an attestation is about in Modelgate's own records. */
export type AttestationKind =
  | 'provenance'
  | 'evaluation'
  | 'decision'
  | 'approval'
  | 'waiver'
  | 'external';

/** A signed statement ready to store: the envelope and the digest of its canonical JSON. */
export interface SignedStatement {
  envelope: Envelope;
  /** `sha256:<hex>` of the RFC 8785 canonical JSON of the envelope. */
  digest: string;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** `sha256:<hex>` of an envelope's canonical JSON: how bundles and statements refer to it. */
export function envelopeDigest(env: Envelope): string {
  return `sha256:${sha256(canonicalize(env))}`;
}

/** Signs in-toto statements about versions with the server's attestation key. */
export class Attestor {
  constructor(private readonly signer: Signer) {}

  get keyid(): string {
    return this.signer.keyid;
  }

  sign(s: Statement): SignedStatement {
    // The payload is the statement's canonical JSON: the same statement always signs the same bytes.
    const envelope = signEnvelope(IN_TOTO_PAYLOAD_TYPE, Buffer.from(canonicalize(s)), [
      this.signer,
    ]);
    return { envelope, digest: envelopeDigest(envelope) };
  }

  /** A statement about one version. */
  about<P>(
    v: { model: string; version: number; digest: string },
    predicateType: string,
    predicate: P,
  ): SignedStatement {
    return this.sign(
      statement(versionSubject(v.model, v.version, v.digest), predicateType, predicate),
    );
  }
}

/** Loads the attestation key (PKCS#8 PEM, Ed25519), creating it (mode 0600) when allowed. */
export function loadOrCreateAttestationKey(file: string, create: boolean): KeyObject {
  const pem = readOrCreateSecretFile(file, 'attestation key', create, () =>
    generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  );
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519')
    throw new Error(`attestation key ${file} must be Ed25519, not ${key.asymmetricKeyType}`);
  return key;
}

/** An Attestor for a private key. */
export function attestorFor(key: KeyObject): Attestor {
  return new Attestor(ed25519Signer(key));
}

/** The test-result predicate of an evaluation: FAILED on critical or high findings, or failure. */
export function evaluationPredicate(e: {
  id: string;
  evaluator: { id: string; version: string };
  config: Record<string, unknown>;
  status: 'succeeded' | 'failed';
  metrics: Record<string, number>;
  findings: { ruleId: string; severity: string }[];
  error?: string | null;
}) {
  const failed = [
    ...new Set(
      e.findings
        .filter((f) => f.severity === 'critical' || f.severity === 'high')
        .map((f) => f.ruleId),
    ),
  ].sort();
  const warned = [
    ...new Set(
      e.findings
        .filter((f) => f.severity === 'medium' || f.severity === 'low')
        .map((f) => f.ruleId),
    ),
  ].sort();
  const counts: Record<string, number> = {};
  for (const f of e.findings) counts[f.severity] = (counts[f.severity] ?? 0) + 1;
  const configuration: ResourceDescriptor[] = [
    {
      name: `${e.evaluator.id}@${e.evaluator.version}`,
      digest: { sha256: sha256(canonicalize(e.config)) },
      annotations: {
        evaluation: e.id,
        status: e.status,
        metrics: e.metrics,
        findings: counts,
        ...(e.error ? { error: e.error } : {}),
      },
    },
  ];
  return {
    result:
      e.status === 'failed' || failed.length > 0
        ? 'FAILED'
        : warned.length > 0
          ? 'WARNED'
          : 'PASSED',
    configuration,
    url: `modelgate:evaluations/${e.id}`,
    passedTests: [],
    warnedTests: warned,
    failedTests: e.status === 'failed' ? ['evaluation-completed', ...failed] : failed,
  };
}

/** The SLSA verification summary of a gate decision, with Modelgate's decision details. */
export function decisionPredicate(d: {
  id: number;
  model: string;
  version: number;
  alias: string;
  kind: string;
  engine: string;
  factsDigest: string;
  outcome: string;
  moved: boolean;
  at: string;
  policies: { name: string; version: number; digest: string; outcome: string }[];
  waivers: string[];
  reasons: string[];
  inputs: { uri: string; digest: string }[];
}) {
  const hex = (digest: string) => digest.replace(/^sha256:/, '');
  const policy =
    d.policies.length === 1
      ? {
          uri: `modelgate:gate-policies/${d.policies[0]!.name}@${d.policies[0]!.version}`,
          digest: { sha256: hex(d.policies[0]!.digest) },
        }
      : {
          uri: `modelgate:gate-policies?${d.policies.map((p) => `${p.name}@${p.version}`).join(',')}`,
          digest: {
            sha256: sha256(
              canonicalize(
                d.policies.map(({ name, version, digest }) => ({ name, version, digest })),
              ),
            ),
          },
        };
  return {
    verifier: {
      id: 'https://modelgate.dev/gate',
      version: { [d.engine.replace(/@[^@]*$/, '')]: d.engine.replace(/^.*@/, '') },
    },
    timeVerified: d.at,
    resourceUri: `modelgate:models/${d.model}/versions/${d.version}`,
    policy,
    inputAttestations: d.inputs.map((i) => ({ uri: i.uri, digest: { sha256: hex(i.digest) } })),
    verificationResult: d.outcome === 'allow' ? 'PASSED' : 'FAILED',
    verifiedLevels: [],
    modelgate: {
      decision: d.id,
      kind: d.kind,
      alias: d.alias,
      outcome: d.outcome,
      moved: d.moved,
      factsDigest: d.factsDigest,
      policies: d.policies,
      waivers: d.waivers,
      reasons: d.reasons,
    },
  };
}
