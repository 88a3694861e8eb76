import { escapesFolder, type FormatIssue } from './format-issue.js';
import {
  type ByteSource,
  type Field,
  fields,
  ints,
  ProtoError,
  stoppedWalk,
  text,
  WalkLimitError,
  WIRE_LEN,
} from './protobuf-wire.js';

/**
 * ONNX checks, from the ModelProto wire format (onnx/onnx.proto3). Nothing is loaded or run:
 * the walk reads node types and domains, tensor headers and external-data references, and
 * skips tensor bytes.
 */

/** What the scanner knows about a file next to the model, by path relative to its folder. */
export type SiblingInfo =
  | { kind: 'file'; size: number }
  | { kind: 'missing' }
  /** A symbolic link that resolves outside the model's folder. */
  | { kind: 'escapes'; target: string };

export type SiblingLookup = (relativePath: string) => SiblingInfo;

/** Operator domains that ONNX and ONNX Runtime define themselves. */
const STANDARD_DOMAINS = new Set([
  '',
  'ai.onnx',
  'ai.onnx.ml',
  'ai.onnx.training',
  'ai.onnx.preview.training',
  'com.microsoft',
  'com.microsoft.nchwc',
  'com.microsoft.experimental',
  'com.ms.internal.nhwc',
]);

/** Operator types that call back into Python (onnxruntime-extensions, PyTorch fallbacks). */
const PYTHON_OPS = /^(PyOp|PyFunc|PyFuncStateless|PythonOp|PyCall|PythonFunction)$/;

/** Bits per element of each TensorProto.DataType (STRING, 8, has no fixed size). */
const BITS: Record<number, number> = {
  1: 32,
  2: 8,
  3: 8,
  4: 16,
  5: 16,
  6: 32,
  7: 64,
  9: 8,
  10: 16,
  11: 64,
  12: 32,
  13: 64,
  14: 64,
  15: 128,
  16: 16,
  17: 8,
  18: 8,
  19: 8,
  20: 8,
  21: 4,
  22: 4,
  23: 4,
  24: 8,
  25: 2,
  26: 2,
};
const STRING_TYPE = 8;

const MAX_DEPTH = 32;
const MAX_NODES = 5_000_000;
const MAX_DIMS = 64;

const TRAVERSAL_REFS = ['CWE-22', 'CVE-2022-25882', 'CVE-2024-27318', 'CVE-2025-51480'];

class OnnxWalk {
  readonly issues: FormatIssue[] = [];
  /** External-data locations that resolved to a file of the model. */
  readonly externalFiles = new Set<string>();
  private nodes = 0;
  private readonly reported = new Set<string>();

  constructor(
    private readonly src: ByteSource,
    private readonly sibling: SiblingLookup | undefined,
    private readonly localDomains: Set<string>,
  ) {}

  /** One issue per rule and subject, so a model with 10,000 custom nodes yields one finding. */
  add(issue: FormatIssue, subject = ''): void {
    const key = `${issue.ruleId}|${subject}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.issues.push(issue);
  }

  graph(f: Field, depth: number): void {
    if (depth > MAX_DEPTH) {
      this.add({
        ruleId: 'onnx.limit',
        severity: 'medium',
        title: `Subgraphs nested deeper than ${MAX_DEPTH} levels: the rest was not checked`,
        detail: `at byte ${f.start}`,
      });
      return;
    }
    for (const g of fields(this.src, f.start, f.end)) {
      if (g.wire !== WIRE_LEN) continue;
      if (g.no === 1) this.node(g, depth);
      else if (g.no === 5) this.tensor(g);
      else if (g.no === 15) this.sparseTensor(g);
    }
  }

  function(f: Field, depth: number): void {
    for (const g of fields(this.src, f.start, f.end))
      if (g.no === 7 && g.wire === WIRE_LEN) this.node(g, depth);
  }

  node(f: Field, depth: number): void {
    if (++this.nodes > MAX_NODES)
      throw new WalkLimitError(`more than ${MAX_NODES.toLocaleString('en')} nodes`);
    let opType = '';
    let domain = '';
    const attributes: Field[] = [];
    for (const g of fields(this.src, f.start, f.end)) {
      if (g.no === 4) opType = text(this.src, g, 256);
      else if (g.no === 7) domain = text(this.src, g, 256);
      else if (g.no === 5 && g.wire === WIRE_LEN) attributes.push(g);
    }
    const qualified = `${domain || 'ai.onnx'}::${opType}`;
    if (PYTHON_OPS.test(opType) || (domain === 'ai.onnx.contrib' && /^Py/.test(opType))) {
      this.add(
        {
          ruleId: 'onnx.python-operator',
          severity: 'high',
          title: `Operator ${qualified} runs Python code supplied by the loading environment`,
          detail: `first at byte ${f.start}`,
          references: ['CWE-94', 'AML.T0011.000'],
          offset: f.start,
        },
        qualified,
      );
    } else if (!STANDARD_DOMAINS.has(domain) && !this.localDomains.has(domain)) {
      this.add(
        {
          ruleId: 'onnx.custom-domain',
          severity: 'medium',
          title: `Custom operator ${qualified}: running the model needs a native or Python plugin`,
          detail: `first at byte ${f.start}`,
          offset: f.start,
        },
        domain,
      );
    }
    for (const a of attributes) this.attribute(a, depth);
  }

  attribute(f: Field, depth: number): void {
    for (const g of fields(this.src, f.start, f.end)) {
      if (g.wire !== WIRE_LEN) continue;
      if (g.no === 5 || g.no === 10) this.tensor(g);
      else if (g.no === 6 || g.no === 11) this.graph(g, depth + 1);
      else if (g.no === 22 || g.no === 23) this.sparseTensor(g);
    }
  }

  sparseTensor(f: Field): void {
    for (const g of fields(this.src, f.start, f.end))
      if ((g.no === 1 || g.no === 2) && g.wire === WIRE_LEN) this.tensor(g);
  }

  tensor(f: Field): void {
    const dims: number[] = [];
    let dataType = 0;
    let name = '';
    let rawLength: number | undefined;
    let external = false;
    const entries: Record<string, string> = {};
    for (const g of fields(this.src, f.start, f.end)) {
      if (g.no === 1) dims.push(...ints(this.src, g, MAX_DIMS + 1));
      else if (g.no === 2) dataType = g.value;
      else if (g.no === 8) name = text(this.src, g, 256);
      else if (g.no === 9) rawLength = g.end - g.start;
      else if (g.no === 14) external = g.value === 1;
      else if (g.no === 13 && g.wire === WIRE_LEN) {
        let key = '';
        let value = '';
        for (const e of fields(this.src, g.start, g.end)) {
          if (e.no === 1) key = text(this.src, e, 64);
          else if (e.no === 2) value = text(this.src, e, 4096);
        }
        entries[key] = value;
      }
    }
    const label = name || `tensor at byte ${f.start}`;
    const expected = this.expectedBytes(dims, dataType, label, f.start);
    if (rawLength !== undefined && expected !== undefined && rawLength !== expected) {
      this.add(
        {
          ruleId: 'onnx.tensor/size-mismatch',
          severity: 'medium',
          title: `Tensor ${label} holds ${rawLength} bytes where its shape and type need ${expected}`,
          detail: `shape [${dims.join(', ')}], data type ${dataType}`,
          offset: f.start,
        },
        label,
      );
    }
    if (external || 'location' in entries) this.externalData(label, entries, expected, external);
  }

  private expectedBytes(
    dims: number[],
    dataType: number,
    label: string,
    at: number,
  ): number | undefined {
    if (dims.length > MAX_DIMS || dims.some((d) => d < 0 || !Number.isSafeInteger(d))) {
      this.add(
        {
          ruleId: 'onnx.tensor/bad-shape',
          severity: 'medium',
          title: `Tensor ${label} has an impossible shape`,
          detail: `dims [${dims.slice(0, 8).join(', ')}${dims.length > 8 ? ', …' : ''}]`,
          offset: at,
        },
        label,
      );
      return undefined;
    }
    if (dataType === STRING_TYPE) return undefined;
    const bits = BITS[dataType];
    if (bits === undefined) {
      if (dataType !== 0)
        this.add(
          {
            ruleId: 'onnx.tensor/unknown-type',
            severity: 'low',
            title: `Tensor ${label} has data type ${dataType}, which ONNX does not define`,
            detail: `data type ${dataType}`,
            offset: at,
          },
          String(dataType),
        );
      return undefined;
    }
    const count = dims.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(count * bits)) {
      this.add(
        {
          ruleId: 'onnx.tensor/bad-shape',
          severity: 'medium',
          title: `Tensor ${label} declares more elements than any file can hold`,
          detail: `dims [${dims.join(', ')}]`,
          offset: at,
        },
        label,
      );
      return undefined;
    }
    return Math.ceil((count * bits) / 8);
  }

  private externalData(
    label: string,
    entries: Record<string, string>,
    expected: number | undefined,
    declared: boolean,
  ): void {
    const location = entries.location;
    if (!location) {
      this.add(
        {
          ruleId: 'onnx.external-data/malformed',
          severity: 'medium',
          title: `Tensor ${label} is marked external but names no location`,
          detail: JSON.stringify(entries),
        },
        label,
      );
      return;
    }
    if (!declared)
      this.add(
        {
          ruleId: 'onnx.external-data/malformed',
          severity: 'low',
          title: `Tensor ${label} names an external location without data_location = EXTERNAL`,
          detail: location,
        },
        label,
      );
    if (escapesFolder(location) || location.includes('\0')) {
      this.add(
        {
          ruleId: 'onnx.external-data/path-traversal',
          severity: 'high',
          title: `External data of tensor ${label} points outside the model folder: ${location}`,
          detail: location,
          references: TRAVERSAL_REFS,
        },
        location,
      );
      return;
    }
    // The file holds tensor bytes whatever else is wrong with the reference.
    this.externalFiles.add(location);
    const numbers: Record<string, number> = {};
    for (const key of ['offset', 'length'] as const) {
      const v = entries[key];
      if (v === undefined) continue;
      if (!/^\d{1,16}$/.test(v)) {
        this.add(
          {
            ruleId: 'onnx.external-data/malformed',
            severity: 'medium',
            title: `External data of tensor ${label} has a ${key} that is not a byte count: ${v.slice(0, 40)}`,
            detail: v.slice(0, 200),
          },
          `${label}|${key}`,
        );
        return;
      }
      numbers[key] = Number(v);
    }
    if (!this.sibling) return;
    const file = this.sibling(location);
    if (file.kind === 'escapes') {
      this.add(
        {
          ruleId: 'onnx.external-data/symlink-escape',
          severity: 'high',
          title: `External data file ${location} is a link to ${file.target}, outside the model folder`,
          detail: file.target,
          references: TRAVERSAL_REFS,
        },
        location,
      );
      return;
    }
    if (file.kind === 'missing') {
      this.add(
        {
          ruleId: 'onnx.external-data/missing',
          severity: 'medium',
          title: `External data file ${location} is not part of the model`,
          detail: location,
        },
        location,
      );
      return;
    }
    const offset = numbers.offset ?? 0;
    const length = numbers.length ?? expected;
    if (length !== undefined && offset + length > file.size) {
      this.add(
        {
          ruleId: 'onnx.external-data/out-of-bounds',
          severity: 'medium',
          title: `External data of tensor ${label} reads bytes ${offset}–${offset + length} of ${location}, which has ${file.size}`,
          detail: `${location} offset ${offset} length ${length}`,
        },
        label,
      );
    } else if (
      numbers.length !== undefined &&
      expected !== undefined &&
      numbers.length !== expected
    ) {
      this.add(
        {
          ruleId: 'onnx.tensor/size-mismatch',
          severity: 'medium',
          title: `Tensor ${label} takes ${numbers.length} external bytes where its shape and type need ${expected}`,
          detail: `${location} length ${numbers.length}`,
        },
        label,
      );
    }
  }
}

/** True when a file name says ONNX (the format has no magic bytes). */
export function isOnnxName(name: string): boolean {
  return /\.onnx$/i.test(name);
}

export interface OnnxCheck {
  issues: FormatIssue[];
  /** Files beside the model that hold its tensors (paths relative to the model's folder). */
  externalFiles: string[];
}

/** Checks one ONNX model. `sibling` resolves external-data locations, when files are at hand. */
export function checkOnnx(src: ByteSource, sibling?: SiblingLookup): OnnxCheck {
  const localDomains = new Set<string>();
  const graphs: Field[] = [];
  const functions: Field[] = [];
  let irVersion: number | undefined;
  const head: FormatIssue[] = [];
  try {
    for (const f of fields(src)) {
      if (f.no === 1 && f.wire === 0) irVersion = f.value;
      else if (f.wire !== WIRE_LEN) continue;
      else if (f.no === 7) graphs.push(f);
      else if (f.no === 25) {
        functions.push(f);
        for (const g of fields(src, f.start, f.end))
          if (g.no === 10) localDomains.add(text(src, g));
      } else if (f.no === 20) {
        // TrainingInfoProto: initialization (1) and algorithm (2) are graphs too.
        for (const g of fields(src, f.start, f.end))
          if ((g.no === 1 || g.no === 2) && g.wire === WIRE_LEN) graphs.push(g);
      }
    }
  } catch (e) {
    if (!(e instanceof ProtoError)) throw e;
    const issue: FormatIssue = {
      ruleId: 'onnx.unparseable',
      severity: 'medium',
      title: 'Not a readable ONNX model: the protobuf structure is broken',
      detail: e.message,
    };
    return { issues: [issue], externalFiles: [] };
  }
  if (graphs.length === 0 || irVersion === undefined) {
    const issue: FormatIssue = {
      ruleId: 'onnx.not-a-model',
      severity: 'medium',
      title: 'Named like an ONNX model but has no graph or IR version',
      detail: `ir_version ${irVersion ?? 'absent'}, ${graphs.length} graphs`,
    };
    return { issues: [issue], externalFiles: [] };
  }
  if (irVersion < 1 || irVersion > 64)
    head.push({
      ruleId: 'onnx.ir-version',
      severity: 'low',
      title: `Unusual ONNX IR version ${irVersion}`,
      detail: String(irVersion),
    });
  const walk = new OnnxWalk(src, sibling, localDomains);
  try {
    for (const g of graphs) walk.graph(g, 0);
    for (const f of functions) walk.function(f, 0);
  } catch (e) {
    walk.add(
      stoppedWalk(
        e,
        'onnx',
        'The ONNX graph is malformed; what came before the error was still checked',
      ),
    );
  }
  return { issues: [...head, ...walk.issues], externalFiles: [...walk.externalFiles] };
}
