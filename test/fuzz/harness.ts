import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { canonicalize } from '../../src/audit/canonical-json.js';
import { CheckpointError, formatCheckpoint, parseCheckpoint } from '../../src/audit/checkpoint.js';
import { MemoryTree } from '../../src/audit/merkle.js';
import {
  generateSignerKey,
  NoteError,
  noteSigner,
  noteVerifier,
  openNote,
  signNote,
  verifierKeyOf,
} from '../../src/audit/signed-note.js';
import { LogVerifier } from '../../src/audit/verify.js';
import { isModelgateError } from '../../src/core/errors.js';
import { walkPickle } from '../../src/evaluators/artifact-scan/pickle-walker.js';
import { scanPaths } from '../../src/evaluators/artifact-scan/scanner.js';
import type { ImportFormat } from '../../src/evaluators/imports/import-format.js';
import { parseImport } from '../../src/evaluators/imports/parse-import.js';
import { canarySystemPrompt, makeCanaries } from '../../src/evaluators/redteam/canaries.js';
import { detectAll } from '../../src/evaluators/redteam/detectors.js';
import { DETECTORS } from '../../src/evaluators/redteam/types.js';
import { absenceWarnings } from '../../src/policy/gates/absence-lint.js';
import { policyCost } from '../../src/policy/gates/cost.js';
import { evaluatePolicy } from '../../src/policy/gates/evaluate.js';
import type { Facts } from '../../src/policy/gates/facts-schema.js';
import { compilePolicy, parsePolicyDocument } from '../../src/policy/gates/policy-document.js';

import { applyEdits, byteEdits } from './mutate.js';

const CORPUS = join(import.meta.dirname, '..', 'corpus');
const IMPORTS = join(import.meta.dirname, '..', 'fixtures', 'imports');
const REDTEAM = join(import.meta.dirname, '..', 'fixtures', 'redteam');

/** Corpus files of one kind (folders walked, links skipped), as fuzz seeds. */
export function seeds(match: (name: string, head: Buffer) => boolean): Buffer[] {
  const out: Buffer[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        const b = readFileSync(p);
        if (match(name, b)) out.push(b);
      }
    }
  };
  for (const kind of ['malicious', 'benign']) walk(join(CORPUS, kind));
  return out;
}

/** Byte strings: random ones, and seeds with bytes flipped, inserted, cut or spliced. */
export function mutatedBytes(seedList: Buffer[]): fc.Arbitrary<Buffer> {
  const random = fc.uint8Array({ maxLength: 4096 }).map((a) => Buffer.from(a));
  if (seedList.length === 0) return random;
  const mutated = fc
    .tuple(fc.integer({ min: 0, max: seedList.length - 1 }), byteEdits(8))
    .map(([i, edits]) => applyEdits(seedList[i] ?? Buffer.alloc(0), edits));
  return fc.oneof({ weight: 1, arbitrary: random }, { weight: 4, arbitrary: mutated });
}

/** One fuzz target: a name, its inputs and the property each input must satisfy. */
export interface FuzzTarget {
  name: string;
  run(runs: number, seed?: number): { runs: number; slowest: number; heapGrowthMiB: number };
}

const MAX_MS = 1000;

function target(name: string, arb: fc.Arbitrary<Buffer>, check: (b: Buffer) => void): FuzzTarget {
  return {
    name,
    run(runs, seed) {
      let slowest = 0;
      global.gc?.();
      const heapBefore = process.memoryUsage().heapUsed;
      fc.assert(
        fc.property(arb, (b) => {
          const t = performance.now();
          check(b);
          const ms = performance.now() - t;
          slowest = Math.max(slowest, ms);
          if (ms > MAX_MS)
            throw new Error(`${name}: input of ${b.length} bytes took ${ms.toFixed(0)} ms`);
        }),
        { numRuns: runs, ...(seed !== undefined && { seed }) },
      );
      global.gc?.();
      return {
        runs,
        slowest,
        heapGrowthMiB: (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20,
      };
    },
  };
}

/**
 * Inputs from outside the log's own writer: checkpoint notes a witness or a verifier receives
 * from a server, and event leaves `audit verify` reads from a database someone may have edited.
 */
function auditSeeds() {
  const skey = generateSignerKey('fuzz.example/audit/v1');
  const wkey = generateSignerKey('fuzz.example/witness', 0x04);
  const tree = new MemoryTree();
  const leaves: Buffer[] = [];
  for (let seq = 0; seq < 4; seq++) {
    const leaf = Buffer.from(
      canonicalize({
        seq,
        time: '2026-11-26T10:00:00.000Z',
        actor: 'ann',
        credential: 'tok_0123456789abcdef',
        action: 'model.create',
        subject: `model:m${seq}`,
        digest: `sha256:${'ab'.repeat(32)}`,
      }),
    );
    leaves.push(leaf);
    tree.append(leaf);
  }
  const text = formatCheckpoint({ origin: 'fuzz.example/audit/v1', size: 4, root: tree.root() });
  const note = signNote(text, [noteSigner(skey)]);
  const cosigned = `${note}${signNote(text, [noteSigner(wkey)]).slice(text.length + 1)}`;
  return {
    vkey: verifierKeyOf(skey),
    notes: [Buffer.from(note), Buffer.from(cosigned)],
    leaves,
    note,
  };
}

// Gate policy documents come from anyone who may run a what-if or publish. Mutations work on
// the shipped pack: bytes anywhere in the YAML, or CEL tokens spliced into one expression so
// that many mutants still type-check and reach the compiled closures.
const POLICIES = join(import.meta.dirname, '..', '..', 'policies');
const CEL_TOKENS = [
  ' && ',
  ' || ',
  '!',
  ' == ',
  ' != ',
  ' < ',
  ' + ',
  ' - ',
  ' * ',
  ' / ',
  ' % ',
  ' in ',
  '(',
  ')',
  '[0]',
  '[1]',
  '.size()',
  'size(',
  '[',
  ']',
  ',',
  "'x'",
  "''",
  '0',
  '1',
  '-1',
  '1.5',
  'null',
  'true',
  'false',
  ' ? ',
  ' : ',
  '.exists(z, ',
  '.all(z, ',
  '.map(z, ',
  '.filter(z, ',
  'z',
  'version.card',
  'version.card.k',
  "version.card['intendedUse']",
  'version.number',
  'version.digest',
  'model.riskTier',
  'now',
  'now - ',
  "duration('1h')",
  'evaluations',
  'findings',
  'approvals',
  'has(',
  'string(',
  ".join(', ')",
  'variables.scans',
  'e.metrics',
  '9223372036854775807',
  'has(version.toString)',
  'has(e.constructor)',
];

interface PolicyText {
  spec: {
    variables?: { expression: string }[];
    validations: { expression: string; messageExpression?: string }[];
  };
}

function policySeeds(): { yaml: Buffer[]; docs: PolicyText[] } {
  const yaml = ['production-gate.yaml', 'staging-gate.yaml'].map((f) =>
    readFileSync(join(POLICIES, f)),
  );
  const docs = yaml.map((b) => parsePolicyDocument(b.toString('utf8')) as unknown as PolicyText);
  return { yaml, docs };
}

function policyMutants(): fc.Arbitrary<Buffer> {
  const { yaml, docs } = policySeeds();
  const spliced = fc
    .record({
      doc: fc.nat(docs.length - 1),
      which: fc.nat(),
      edits: fc.array(fc.tuple(fc.boolean(), fc.nat(), fc.nat(CEL_TOKENS.length - 1), fc.nat(8)), {
        minLength: 1,
        maxLength: 4,
      }),
    })
    .map(({ doc, which, edits }) => {
      const d = structuredClone(docs[doc]!);
      const slots: { get(): string; set(v: string): void }[] = [];
      for (const v of d.spec.variables ?? [])
        slots.push({ get: () => v.expression, set: (x) => (v.expression = x) });
      for (const v of d.spec.validations) {
        slots.push({ get: () => v.expression, set: (x) => (v.expression = x) });
        if (v.messageExpression !== undefined)
          slots.push({
            get: () => v.messageExpression!,
            set: (x) => (v.messageExpression = x),
          });
      }
      const slot = slots[which % slots.length]!;
      let text = slot.get();
      for (const [insert, pos, token, cut] of edits) {
        const at = pos % (text.length + 1);
        text = insert
          ? text.slice(0, at) + CEL_TOKENS[token] + text.slice(at)
          : text.slice(0, at) + text.slice(at + cut);
      }
      slot.set(text);
      return Buffer.from(JSON.stringify(d));
    });
  return fc.oneof({ weight: 3, arbitrary: spliced }, { weight: 1, arbitrary: mutatedBytes(yaml) });
}

// Snapshots the mutants are evaluated on: one that passes the shipped production gate, and
// variants with a critical finding, no evaluations and odd card values.
function policyFacts(): Facts[] {
  const digest = `sha256:${'ab'.repeat(32)}`;
  const base: Facts = {
    schemaVersion: 1,
    version: {
      model: 'fraud',
      number: 7,
      digest,
      author: 'alice',
      createdAt: '2026-11-01T00:00:00.000Z',
      tags: ['candidate'],
      card: { intendedUse: 'scoring', limitations: 'EU', trainingData: 'tx', k: 1 },
    },
    model: { name: 'fraud', ownerTeam: 'risk', riskTier: 'high', tags: [] },
    evaluations: [
      {
        id: 'ev-1',
        evaluator: 'artifact-scan',
        evaluatorVersion: '1',
        status: 'succeeded',
        digest,
        ranBy: 'scanner-bot',
        finishedAt: '2026-11-20T00:00:00.000Z',
        metrics: { asr: 0.25 },
      },
    ],
    findings: [],
    lineage: [],
    request: { alias: 'production', requestedBy: 'ci', requestedAt: '2026-11-25T00:00:00.000Z' },
    approvals: [
      { approver: 'carol', roles: [], teams: [], decision: 'approve', at: '2026-11-25T01:00:00Z' },
      { approver: 'dan', roles: [], teams: [], decision: 'approve', at: '2026-11-25T02:00:00Z' },
    ],
    waivers: [],
    now: '2026-11-26T00:00:00.000Z',
  };
  const critical = structuredClone(base);
  critical.findings.push({
    id: 'fd-1',
    ruleId: 'pickle.unsafe-global',
    severity: 'critical',
    title: 'os.system',
    evaluator: 'artifact-scan',
    evaluationId: 'ev-1',
    waived: false,
  });
  const bare = structuredClone(base);
  bare.evaluations = [];
  bare.approvals = [];
  bare.version.card = { k: null, intendedUse: '' };
  return [base, critical, bare];
}

/**
 * A mutated policy document is refused with a ModelgateError, or compiles; a compiled one is
 * evaluated with its compiled closures and with cel-js alone, which must agree rule by rule.
 */
function policyBytes() {
  const facts = policyFacts();
  return (b: Buffer) => {
    let compiled: ReturnType<typeof compilePolicy>;
    try {
      compiled = compilePolicy(parsePolicyDocument(b.toString('utf8')));
    } catch (e) {
      if (isModelgateError(e)) return;
      throw e;
    }
    // The publish-time checks read the same untrusted document: they answer, never crash.
    const { cost, problems } = policyCost(compiled.document);
    if (!(cost >= 0) || !Array.isArray(problems)) throw new Error(`cost ${cost}`);
    if (!Array.isArray(absenceWarnings(compiled.document))) throw new Error('no warnings list');
    // Only what publishing accepts is evaluated, as on a server.
    if (problems.length > 0) return;
    for (const f of facts) {
      const fast = JSON.stringify(evaluatePolicy(compiled, f, '', { compiled: true }));
      const reference = JSON.stringify(evaluatePolicy(compiled, f, ''));
      if (fast !== reference) throw new Error(`compiled and cel-js differ:\n${fast}\n${reference}`);
    }
  };
}

/** Runs the scanner on bytes written to a file, as it would run on an upload. */
function scanBytes(dir: string, name: string) {
  return (b: Buffer) => {
    const p = join(dir, name);
    writeFileSync(p, b);
    const r = scanPaths([p]);
    if (!Array.isArray(r.findings)) throw new Error('no findings array');
  };
}

const IMPORT_SAMPLES: [ImportFormat, string][] = [
  ['garak', 'garak-report.jsonl'],
  ['promptfoo', 'promptfoo-results.json'],
  ['sarif', 'sarif-log.sarif'],
  ['modelgate', 'modelgate-result.json'],
];

/** Imports bytes as a result file: it parses or is refused with IMPORT_INVALID, nothing else. */
function importBytes(format: ImportFormat) {
  return (b: Buffer) => {
    try {
      const r = parseImport(format, b.toString('utf8'));
      if (!Array.isArray(r.findings)) throw new Error('no findings array');
    } catch (e) {
      if (!isModelgateError(e, 'IMPORT_INVALID')) throw e;
    }
  };
}

// Model answers are untrusted input too: units that make naive patterns backtrack (runs of a
// token's own characters, unfinished markup, text that keeps almost matching), repeated into
// long answers, then mutated.
const PATHOLOGICAL_UNITS = [
  'a',
  ' ',
  '![',
  '[a](',
  '![a](https://x.example.net/',
  '[a]: ',
  '<img ',
  '<img src="',
  '<a href=',
  '```',
  '`',
  'sk-',
  'sk-a1b2',
  'eyJ-',
  'eyJa.',
  'AKIA',
  'xoxb-1',
  '-----BEGIN A ',
  'a@',
  'a.a@a.',
  '1 ',
  '1-',
  '+1 ',
  '(2',
  'DE89 ',
  '12 34 ',
  "i can't ",
  "i'm sorry, but ",
  'but here ',
  '1. x\n',
  '"',
  'you are wren the customer ',
  'mg-injection-ok-',
  '\u200b',
  '\uff53',
  '\u{e0061}',
  '4e1b9c07',
  '%',
  'https://',
];

function responseSeeds(): Buffer[] {
  const labelled = JSON.parse(readFileSync(join(REDTEAM, 'labelled-responses.json'), 'utf8')) as {
    response: string;
  }[];
  return [
    ...PATHOLOGICAL_UNITS.map((u) => Buffer.from(u.repeat(Math.ceil(4096 / u.length)))),
    ...labelled.map((l) => Buffer.from(l.response)),
  ];
}

const DETECTOR_CONTEXT = (() => {
  const canaries = makeCanaries();
  return {
    systemPrompt: canarySystemPrompt(canaries),
    canaries,
    trigger: 'MG-INJECTION-OK-HERON',
    prompt: 'Summarize this e-mail for me.',
  };
})();

/**
 * The fuzz targets: the pickle walker in memory, the whole scanner on each format's files, the
 * audit log's inputs and the evaluation result importers.
 * Callers call `loadHdf5()` first, so that loading the HDF5 library is not counted against the
 * first HDF5 input's time.
 */
export function targets(): { list: FuzzTarget[]; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'modelgate-fuzz-'));
  const isPickle = (_: string, h: Buffer) => h[0] === 0x80 || h[0] === 0x28 || h[0] === 0x63;
  const isZip = (_: string, h: Buffer) => h.readUInt32LE(0) === 0x04034b50;
  const isTar = (n: string) => n.endsWith('.tar');
  const isNpy = (n: string) => n.endsWith('.npy');
  const isSafetensors = (n: string) => n.endsWith('.safetensors');
  const isGguf = (n: string) => n.endsWith('.gguf');
  const isOnnx = (n: string) => n.endsWith('.onnx');
  const isPb = (n: string) => n.endsWith('.pb');
  const isH5 = (n: string) => n.endsWith('.h5');
  const isKeras = (n: string) => n.endsWith('.keras');
  const audit = auditSeeds();
  return {
    list: [
      target('pickle walker', mutatedBytes(seeds(isPickle)), (b) => {
        const w = walkPickle(b);
        if (w.opcodes < 0) throw new Error('impossible');
      }),
      target('scanner: pickle files', mutatedBytes(seeds(isPickle)), scanBytes(dir, 'f.pkl')),
      target('scanner: zip archives', mutatedBytes(seeds(isZip)), scanBytes(dir, 'f.pt')),
      target('scanner: tar archives', mutatedBytes(seeds(isTar)), scanBytes(dir, 'f.tar')),
      target('scanner: numpy files', mutatedBytes(seeds(isNpy)), scanBytes(dir, 'f.npy')),
      target(
        'scanner: safetensors files',
        mutatedBytes(seeds(isSafetensors)),
        scanBytes(dir, 'f.safetensors'),
      ),
      target('scanner: GGUF files', mutatedBytes(seeds(isGguf)), scanBytes(dir, 'f.gguf')),
      target('scanner: ONNX models', mutatedBytes(seeds(isOnnx)), scanBytes(dir, 'f.onnx')),
      target(
        'scanner: TensorFlow graphs',
        mutatedBytes(seeds(isPb)),
        scanBytes(dir, 'saved_model.pb'),
      ),
      target('scanner: Keras HDF5 files', mutatedBytes(seeds(isH5)), scanBytes(dir, 'f.h5')),
      target('scanner: Keras archives', mutatedBytes(seeds(isKeras)), scanBytes(dir, 'f.keras')),
      // A note either opens and parses or is refused with the format's own error.
      target('audit: signed checkpoint notes', mutatedBytes(audit.notes), (b) => {
        try {
          parseCheckpoint(openNote(b.toString('utf8'), [noteVerifier(audit.vkey)]).text);
        } catch (e) {
          if (!(e instanceof NoteError) && !(e instanceof CheckpointError)) throw e;
        }
      }),
      // Any event bytes give a report (a violation at worst), never an exception.
      target('audit: log verifier on event bytes', mutatedBytes(audit.leaves), (b) => {
        const v = new LogVerifier({ checkpoints: [audit.note], logKey: audit.vkey });
        v.add({ index: 0, bytes: b });
        if (typeof v.finish().ok !== 'boolean') throw new Error('no verdict');
      }),
      // Every detector on any answer: a verdict, never an exception, never a slow input.
      target('red-team detectors on model answers', mutatedBytes(responseSeeds()), (b) => {
        for (const d of detectAll(DETECTORS, b.toString('utf8'), DETECTOR_CONTEXT))
          if (typeof d.hit !== 'boolean') throw new Error('no verdict');
      }),
      target('gate policy documents, compiled and interpreted', policyMutants(), policyBytes()),
      // Result files from other tools, seeded with the import samples.
      ...IMPORT_SAMPLES.map(([format, file]) =>
        target(
          `imports: ${format} results`,
          mutatedBytes([readFileSync(join(IMPORTS, file))]),
          importBytes(format),
        ),
      ),
    ],
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
