import type { Kysely } from 'kysely';
import { subjects } from '../audit/subjects.js';
import type { Actor } from '../core/types.js';
import type { AttestationKind, Attestor, SignedStatement } from '../evidence/attestor.js';
import { appendAudit } from './audit-append.js';
import type { DB } from './schema.js';

/** What to attest: one statement about one version. */
export interface AttestationInput {
  modelId: number;
  model: string;
  version: number;
  digest: string;
  kind: AttestationKind;
  /** The record it attests: an evaluation id, a decision id, `request/review`, a waiver id. */
  ref: string;
  predicateType: string;
  predicate: unknown;
}

/**
 * Signs a statement and stores it with its audit event, inside the caller's transaction: the
 * record and its attestation commit together. Nothing happens without an attestor (stores built
 * for benchmarks). Returns the attestation's id and envelope digest.
 */
export async function appendAttestation(
  trx: Kysely<DB>,
  attestor: Attestor | undefined,
  a: AttestationInput,
  by: Actor,
  at: string,
): Promise<{ id: number; digest: string } | undefined> {
  if (!attestor) return undefined;
  const signed = attestor.about(
    { model: a.model, version: a.version, digest: a.digest },
    a.predicateType,
    a.predicate,
  );
  return storeAttestation(trx, a, signed, by, at, {});
}

/**
 * Stores an already signed statement about one version (it may name several) with its audit
 * event: the server's own, or an external evaluator's whose signature is kept as sent.
 */
export async function storeAttestation(
  trx: Kysely<DB>,
  a: Omit<AttestationInput, 'predicate'>,
  signed: SignedStatement,
  by: Actor,
  at: string,
  extra: Record<string, unknown>,
): Promise<{ id: number; digest: string }> {
  const row = await trx
    .insertInto('attestations')
    .values({
      model_id: a.modelId,
      version: a.version,
      kind: a.kind,
      ref: a.ref,
      predicate_type: a.predicateType,
      envelope: JSON.stringify(signed.envelope),
      envelope_digest: signed.digest,
      created_at: at,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const id = Number(row.id);
  await appendAudit(
    trx,
    {
      actor: by,
      action: 'attestation.create',
      subject: subjects.attestation(a.model, a.version, id),
      content: {
        id,
        kind: a.kind,
        ref: a.ref,
        predicateType: a.predicateType,
        subject: a.digest,
        envelopeDigest: signed.digest,
        ...extra,
      },
    },
    at,
  );
  return { id, digest: signed.digest };
}
