import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { canonicalize } from '../audit/canonical-json.js';
import { parseCheckpoint } from '../audit/checkpoint.js';
import { leafHashOfText, verifyInclusion } from '../audit/merkle.js';
import { noteVerifier, openNote } from '../audit/signed-note.js';
import { layoutDigest, versionDigest } from '../core/manifest.js';
import { envelopeDigest } from './attestor.js';
import { decodeBase64, type Envelope, keyidOf, verifyEnvelope } from './dsse.js';
import { parseStatement } from './statement.js';

/** The media type of an evidence bundle, version 1. */
export const BUNDLE_MEDIA_TYPE = 'application/vnd.modelgate.evidence-bundle.v1+json';
/** The predicate type of the statement that lists what one export holds. */
export const EXPORT_PREDICATE = 'https://modelgate.dev/attestation/evidence-export/v1';

/** An audit log event with its inclusion proof in the bundle's checkpoint. */
export interface LoggedEntry {
  index: number;
  /** The event's leaf (canonical JSON: seq, time, actor, credential, action, subject, digest). */
  leaf: string;
  /** The event's content (canonical JSON), which the leaf's digest covers. */
  content: string;
  /** Sibling hashes, base64, from the leaf up. */
  proof: string[];
}

/** One attestation in a bundle, with its audit log entry. */
export interface BundleAttestation {
  id: number;
  kind: string;
  ref: string;
  envelope: Envelope;
  log: LoggedEntry;
}

/** Everything needed to check a version's evidence offline, in one JSON document. */
export interface EvidenceBundle {
  mediaType: typeof BUNDLE_MEDIA_TYPE;
  version: {
    model: string;
    number: number;
    /** The OpenSSF model-signing subject digest: file bytes in path order. */
    digest: string;
    /** Paths bound to file digests (absent in bundles of earlier releases). */
    layoutDigest?: string;
    files: { path: string; size: number; digest: string }[];
  };
  attestations: BundleAttestation[];
  /** The signed list of what this export holds, itself in the log: nothing can be dropped. */
  export: { envelope: Envelope; log: LoggedEntry };
  /** The signed (and witnessed) checkpoint every proof leads to. */
  checkpoint: string;
  keys: { log: string; attestation: string };
}

/** One line of the verification checklist. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** The result of verifying a bundle: every check, and whether all held. */
export interface BundleReport {
  ok: boolean;
  checks: Check[];
  /** When the server signed the export (RFC 3339); absent in bundles of older servers. */
  exportedAt?: string;
}

/** How far in the future a signed export time may be (clocks differ). */
const CLOCK_SKEW_MS = 5 * 60_000;

/** `3 d 4 h`, `2 h 5 min`, `40 s`: an age for people. */
export function describeAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min`;
  return `${s} s`;
}

const sha256 = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

class Checklist {
  readonly checks: Check[] = [];
  check(name: string, test: () => string): boolean {
    try {
      this.checks.push({ name, ok: true, detail: test() });
      return true;
    } catch (e) {
      this.checks.push({ name, ok: false, detail: (e as Error).message });
      return false;
    }
  }
}

function need(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

/** Checks a logged entry: its leaf, its content's digest, the event's fields and its proof. */
function checkEntry(
  e: LoggedEntry,
  want: { action: string; subject: string },
  tree: { size: number; root: Buffer },
): Record<string, unknown> {
  need(typeof e?.leaf === 'string' && typeof e.content === 'string', 'the log entry is incomplete');
  const leaf = JSON.parse(e.leaf) as Record<string, unknown>;
  need(canonicalize(leaf) === e.leaf, 'the leaf is not canonical JSON');
  need(leaf.seq === e.index, `the leaf says index ${leaf.seq}, the bundle ${e.index}`);
  need(leaf.action === want.action, `the event is ${leaf.action}, not ${want.action}`);
  need(leaf.subject === want.subject, `the event is about ${leaf.subject}, not ${want.subject}`);
  need(leaf.digest === sha256(e.content), "the event's content does not hash to its leaf's digest");
  need(Array.isArray(e.proof), 'the inclusion proof is missing');
  // Canonical base64 only: Node ignores a last character's spare bits, which would let one
  // proof have several spellings.
  const proof = e.proof.map((p, i) => decodeBase64(p, `proof hash ${i}`));
  need(
    verifyInclusion(e.index, tree.size, leafHashOfText(e.leaf), proof, tree.root),
    `event ${e.index} is not in the checkpoint's tree of ${tree.size} (inclusion proof fails)`,
  );
  return JSON.parse(e.content) as Record<string, unknown>;
}

/**
 * Verifies an evidence bundle with no server: the version's manifest, the checkpoint signed by
 * the given log key, every attestation's signature, subject and log entry with its inclusion
 * proof, and the signed export list (so an attestation cannot be dropped unnoticed). Returns
 * the checklist; `ok` only when every check holds.
 */
export function verifyBundle(
  input: unknown,
  trust: {
    logKey: string;
    attestationKey?: KeyObject;
    witnessKeys?: string[];
    /** Fail when the signed export time is older than this (or missing). */
    maxAgeMs?: number;
    /** The time to measure the age against (default: now). */
    now?: number;
  },
): BundleReport {
  const list = new Checklist();
  let exportedAt: string | undefined;
  const b = input as EvidenceBundle;
  const shaped = list.check('bundle format', () => {
    need(typeof b === 'object' && b !== null, 'not a JSON object');
    need(
      b.mediaType === BUNDLE_MEDIA_TYPE,
      `media type ${JSON.stringify(b.mediaType)}, not ${BUNDLE_MEDIA_TYPE}`,
    );
    need(Array.isArray(b.attestations), 'no attestation list');
    need(typeof b.version?.digest === 'string' && Array.isArray(b.version.files), 'no version');
    need(
      typeof b.checkpoint === 'string' && typeof b.keys?.attestation === 'string',
      'no checkpoint or keys',
    );
    return `${b.attestations.length} attestations about ${b.version.model}@${b.version.number}`;
  });
  if (!shaped) return { ok: false, checks: list.checks };
  const v = b.version;
  list.check('version manifest', () => {
    const manifest = v.files.map((f) => ({
      path: f.path,
      size: f.size,
      sha256: String(f.digest).replace(/^sha256:/, ''),
    }));
    const digest = versionDigest(manifest);
    need(digest === v.digest, `the files hash to ${digest}, not ${v.digest}`);
    if (v.layoutDigest === undefined) return `${v.files.length} file(s) hash to ${v.digest}`;
    const layout = layoutDigest(manifest);
    need(
      layout === v.layoutDigest,
      `the paths and files hash to layout ${layout}, not ${v.layoutDigest}`,
    );
    return `${v.files.length} file(s) hash to ${v.digest}, with their paths to layout ${layout}`;
  });
  let tree: { size: number; root: Buffer } | undefined;
  list.check('checkpoint signature', () => {
    const verifier = noteVerifier(trust.logKey);
    let text: string;
    try {
      text = openNote(b.checkpoint, [verifier]).text;
    } catch (e) {
      throw new Error(
        `the checkpoint is not signed by the log key ${verifier.name}: ${(e as Error).message}`,
      );
    }
    need(
      b.keys.log === trust.logKey,
      `the bundle names the log key ${String(b.keys.log).split('+')[0]}+..., not the given one`,
    );
    const cp = parseCheckpoint(text);
    need(
      cp.origin === verifier.name,
      `the checkpoint is of log ${cp.origin}, not ${verifier.name}`,
    );
    tree = { size: cp.size, root: cp.root };
    return `${cp.origin}, ${cp.size} events, root ${cp.root.toString('base64')}`;
  });
  if (trust.witnessKeys && trust.witnessKeys.length > 0) {
    const keys = trust.witnessKeys;
    list.check('witnesses', () => {
      const missing: string[] = [];
      for (const k of keys) {
        const w = noteVerifier(k);
        // One witness at a time: a bad cosignature by one must not hide the others'.
        try {
          openNote(b.checkpoint, [w]);
        } catch {
          missing.push(w.name);
        }
      }
      need(missing.length === 0, `no valid cosignature by ${missing.join(', ')}`);
      return `cosigned by ${keys.length} of ${keys.length} given witness(es)`;
    });
  }
  let key: KeyObject | undefined;
  list.check('attestation key', () => {
    const inBundle = createPublicKey(b.keys.attestation);
    // Exactly the PEM this key exports to: no other spelling of it is accepted.
    need(
      inBundle.export({ type: 'spki', format: 'pem' }).toString() === b.keys.attestation,
      "the bundle's attestation key is not in its canonical PEM form",
    );
    if (!trust.attestationKey) {
      key = inBundle;
      return `${keyidOf(inBundle)} from the bundle (each statement is also proven to be in the log)`;
    }
    need(
      keyidOf(trust.attestationKey) === keyidOf(inBundle),
      `the bundle's key ${keyidOf(inBundle)} is not the given key ${keyidOf(trust.attestationKey)}`,
    );
    key = trust.attestationKey;
    return `${keyidOf(key)} (given)`;
  });
  const digests = new Map<string, string>();
  for (const a of b.attestations) {
    const name = `attestation ${a?.id} (${a?.kind} ${a?.ref})`;
    list.check(name, () => {
      need(key, 'no trusted attestation key');
      need(tree, 'no verified checkpoint');
      const content = checkEntry(
        a.log,
        { action: 'attestation.create', subject: `attestation:${v.model}@${v.number}/${a.id}` },
        tree,
      );
      need(
        content.kind === a.kind && content.ref === a.ref,
        `the log records ${content.kind} ${content.ref}, the bundle says ${a.kind} ${a.ref}`,
      );
      // An external evaluator's statement is checked with the key the log recorded for it
      // (proven by the inclusion proof above); everything else with the server's key.
      let signer = key;
      if (a.kind === 'external') {
        need(typeof content.signerKey === 'string', 'the log records no key for this signer');
        signer = createPublicKey(content.signerKey as string);
        need(keyidOf(signer) === content.signer, "the logged key is not the signer's key id");
      }
      const verified = verifyEnvelope(a.envelope, [{ key: signer }]);
      const s = parseStatement(verified.payload);
      need(
        s.subject.some((x) => `sha256:${x.digest.sha256}` === v.digest),
        `the statement is not about ${v.digest}`,
      );
      const digest = envelopeDigest(a.envelope);
      need(
        content.envelopeDigest === digest,
        'the log records another envelope for this attestation',
      );
      need(content.subject === v.digest, 'the log records it about another version');
      digests.set(digest, name);
      return `${s.predicateType}, signed, logged as event ${a.log.index}`;
    });
  }
  list.check('export list', () => {
    need(key, 'no trusted attestation key');
    need(tree, 'no verified checkpoint');
    const verified = verifyEnvelope(b.export?.envelope, [{ key }]);
    const s = parseStatement(verified.payload);
    need(
      s.predicateType === EXPORT_PREDICATE,
      `predicate ${s.predicateType}, not ${EXPORT_PREDICATE}`,
    );
    const p = s.predicate as {
      attestations?: { id: number; digest: string }[];
      version?: unknown;
      exportedAt?: unknown;
    };
    if (typeof p.exportedAt === 'string' && !Number.isNaN(Date.parse(p.exportedAt)))
      exportedAt = p.exportedAt;
    const listed = p.attestations ?? [];
    // The version record (files with paths and sizes) is signed here: the manifest digest
    // alone covers only the files' digests.
    need(
      canonicalize(p.version ?? null) === canonicalize(v),
      'the version in the bundle is not the version the export signed',
    );
    const content = checkEntry(
      b.export.log,
      { action: 'evidence.export', subject: `export:${v.model}@${v.number}` },
      tree,
    );
    need(
      content.statement === envelopeDigest(b.export.envelope),
      'the log records another export statement',
    );
    for (const l of listed)
      need(
        digests.has(l.digest),
        `attestation ${l.id} is listed by the export but missing or invalid in the bundle`,
      );
    need(
      listed.length === b.attestations.length,
      `the export lists ${listed.length} attestations, the bundle holds ${b.attestations.length}`,
    );
    return `${listed.length} attestations listed, signed, logged as event ${b.export.log.index}`;
  });
  // The signed export time: how old is what this bundle says? (Checked only once the export
  // statement's signature held: an unsigned time says nothing.)
  const now = trust.now ?? Date.now();
  if (exportedAt !== undefined || trust.maxAgeMs !== undefined)
    list.check('export age', () => {
      need(
        exportedAt !== undefined,
        'the export statement carries no signed time (a bundle from an older server): its age cannot be told',
      );
      const at = Date.parse(exportedAt as string);
      need(at <= now + CLOCK_SKEW_MS, `exported at ${exportedAt}, in the future`);
      const age = Math.max(0, now - at);
      if (trust.maxAgeMs !== undefined)
        need(
          age <= trust.maxAgeMs,
          `exported at ${exportedAt}, ${describeAge(age)} ago: older than the ${describeAge(trust.maxAgeMs)} allowed`,
        );
      return `exported at ${exportedAt}, ${describeAge(age)} ago`;
    });
  return {
    ok: list.checks.every((c) => c.ok),
    checks: list.checks,
    ...(exportedAt !== undefined && { exportedAt }),
  };
}
