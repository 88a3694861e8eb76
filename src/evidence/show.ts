import type { KeyObject } from 'node:crypto';
import type { StoredAttestation } from './attestation-store.js';
import { PREDICATE_TYPES } from './attestor.js';
import { verifyEnvelope } from './dsse.js';
import { parseStatement } from './statement.js';

/** One change of an alias, as the alias history lists it. */
export interface AliasEvent {
  alias: string;
  fromVersion: number | null;
  toVersion: number | null;
  actor: string;
  at: string;
}

type Predicate = Record<string, unknown>;

/**
 * The auditor's answer for one version, as lines: who registered it, what was tested with what
 * result, every decision and its failed rules, who approved or rejected and when, the waivers,
 * and where its aliases went. Each line names its attestation, whose signature is checked here
 * with the server's public key (a line that fails is marked and counted), or the log event.
 */
export function showEvidence(
  v: { model: string; number: number; digest: string; author: string; createdAt: string },
  attestations: StoredAttestation[],
  aliasEvents: AliasEvent[],
  key: KeyObject,
  evaluatorKeys: { name: string; key: KeyObject }[] = [],
): { lines: string[]; unverified: number } {
  const lines = [
    `${v.model}@${v.number} ${v.digest}`,
    `registered by ${v.author} at ${v.createdAt} [audit event version.create]`,
  ];
  const sections: Record<string, string[]> = {
    lineage: [],
    evaluations: [],
    decisions: [],
    approvals: [],
    waivers: [],
  };
  let unverified = 0;
  let provenance = false;
  for (const a of attestations) {
    let p: Predicate;
    try {
      // An external evaluator's statement verifies with its registered key, not the server's.
      const trusted =
        a.kind === 'external' ? evaluatorKeys.map((k) => ({ key: k.key })) : [{ key }];
      const s = parseStatement(verifyEnvelope(a.envelope, trusted).payload);
      if (!s.subject.some((x) => `sha256:${x.digest.sha256}` === v.digest))
        throw new Error('not about this digest');
      p = s.predicate as Predicate;
    } catch (e) {
      unverified++;
      lines.push(`UNVERIFIED attestation ${a.id} (${a.kind} ${a.ref}): ${(e as Error).message}`);
      continue;
    }
    const tag = `[attestation ${a.id}]`;
    // External statements are shown as their evaluator sent them, whatever their type.
    switch (a.kind === 'external' ? 'external' : a.predicateType) {
      case PREDICATE_TYPES.provenance: {
        // Printed from the signed statement, never from the row: a database edit of the
        // author must not be shown with this attestation cited as its source.
        const author = (p.buildDefinition as { internalParameters?: Predicate })?.internalParameters
          ?.author;
        const at = (p.runDetails as { metadata?: Predicate })?.metadata?.startedOn;
        lines[1] = `registered by ${String(author)} at ${String(at)} ${tag}`;
        if (author !== v.author || at !== v.createdAt) {
          unverified++;
          lines.push(
            `MISMATCH the version record says registered by ${v.author} at ${v.createdAt}; the signed provenance (attestation ${a.id}) says ${String(author)} at ${String(at)}: the record was changed outside Modelgate (run modelgate audit verify)`,
          );
        }
        provenance = true;
        const deps = (p.buildDefinition as { resolvedDependencies: Predicate[] })
          .resolvedDependencies;
        for (const d of deps)
          sections.lineage?.push(
            `  ${(d.annotations as Predicate)?.relation ?? 'uses'} ${d.name ?? d.uri} ${tag}`,
          );
        break;
      }
      case PREDICATE_TYPES.testResult: {
        const cfg = (p.configuration as { name: string; annotations?: Predicate }[])[0];
        const failed = ((p.failedTests as string[] | undefined) ?? []).join(', ');
        sections.evaluations?.push(
          `  ${cfg?.name} ${a.ref}: ${p.result}${failed ? ` (${failed})` : ''} ${tag}`,
        );
        break;
      }
      case PREDICATE_TYPES.verificationSummary: {
        const m = p.modelgate as {
          decision: number;
          kind: string;
          alias: string;
          outcome: string;
          moved: boolean;
          policies: { name: string; version: number }[];
          reasons: string[];
          waivers: string[];
        };
        sections.decisions?.push(
          `  decision ${m.decision} (${m.kind}) for ${m.alias}: ${m.outcome}${m.moved ? ', alias moved' : ''} under ${m.policies.map((x) => `${x.name}@${x.version}`).join(', ') || 'no policy'} at ${p.timeVerified}${m.waivers.length ? `, waivers ${m.waivers.join(', ')}` : ''} ${tag}`,
          ...m.reasons.map((r) => `      FAIL ${r}`),
        );
        break;
      }
      case PREDICATE_TYPES.approval:
        sections.approvals?.push(
          `  ${p.decision === 'approve' ? 'approved' : 'rejected'} by ${p.reviewer} at ${p.at} (request ${p.request} for ${p.alias}, requested by ${p.requestedBy}): ${p.comment} ${tag}`,
        );
        break;
      case PREDICATE_TYPES.waiver:
        sections.waivers?.push(
          `  waiver ${p.id}: ${p.findingRule ?? p.rule} by ${p.approvedBy} until ${p.expiresAt}: ${p.justification} ${tag}`,
        );
        break;
      default:
        sections.evaluations?.push(
          `  ${a.kind === 'external' ? `external (${a.ref.split('/')[0]}) ` : ''}${a.predicateType}${
            typeof p.result === 'string' ? `: ${p.result}` : ''
          } ${tag}`,
        );
    }
  }
  if (!provenance) {
    // Nothing signed says who registered it: the row alone is not evidence.
    unverified++;
    lines[1] = `UNVERIFIED registered by ${v.author} at ${v.createdAt}: no signed provenance for this version`;
  }
  for (const [name, list] of Object.entries(sections))
    lines.push(`${name}:`, ...(list.length ? list : ['  none']));
  lines.push('aliases:');
  if (aliasEvents.length === 0) lines.push('  none');
  for (const e of aliasEvents)
    lines.push(
      `  ${e.at} ${e.alias}: ${e.fromVersion ?? '-'} -> ${e.toVersion ?? '-'} by ${e.actor} [audit event alias.*]`,
    );
  return { lines, unverified };
}
