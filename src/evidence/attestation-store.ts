import type { Actor } from '../core/types.js';
import type { EvidenceInput } from './compliance.js';
import type { Envelope } from './dsse.js';

/** A stored attestation: a signed statement about one version. */
export interface StoredAttestation {
  id: number;
  model: string;
  version: number;
  kind: string;
  /** The record it attests (an evaluation id, a decision id, `request/reviewer`, a waiver id). */
  ref: string;
  predicateType: string;
  envelope: Envelope;
  envelopeDigest: string;
  createdAt: string;
}

/** Reads attestations; they are written by the stores whose records they attest. */
export interface AttestationStore {
  /** Every attestation about one version, oldest first. */
  forVersion(model: string, version: number): Promise<StoredAttestation[]>;
  /**
   * What a portfolio report reads for every model: the version under `alias` (when the model
   * has it), else the latest version, with its decoded attestations, evaluators and lineage.
   */
  portfolio(alias: string): Promise<Omit<EvidenceInput, 'checkpoint'>[]>;
  /**
   * Keeps an external evaluator's signed statement about a version, its signature as sent,
   * with an audit event naming the signer.
   */
  addExternal(
    e: {
      model: string;
      version: number;
      digest: string;
      predicateType: string;
      envelope: Envelope;
      signer: { name: string; keyid: string; pem: string };
    },
    by: Actor,
  ): Promise<StoredAttestation>;
  /** Logs an evidence export: who exported which statement listing which attestations. */
  recordExport(
    e: {
      model: string;
      version: number;
      digest: string;
      statement: string;
      attestations: string[];
    },
    by: Actor,
  ): Promise<void>;
}
