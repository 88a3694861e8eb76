import type { FormatIssue } from './format-issue.js';
import {
  type ByteSource,
  type Field,
  fields,
  ProtoError,
  stoppedWalk,
  text,
  WalkLimitError,
  WIRE_LEN,
  WIRE_VARINT,
} from './protobuf-wire.js';

/**
 * TensorFlow graphs (SavedModel `saved_model.pb`, frozen GraphDef `.pb`) and Keras' SavedModel
 * metadata (`keras_metadata.pb`), walked in the protobuf wire format. The scanner lists the
 * operations the graph and its function library use and flags those that touch files, run
 * Python or reach the shell (the op lists modelscan and modelaudit publish).
 */

/** Ops that read or write files, call back into Python or run commands. */
const DANGEROUS_OPS = new Set([
  'ReadFile',
  'WriteFile',
  'PyFunc',
  'PyFuncStateless',
  'EagerPyFunc',
  'PyCall',
  'ShellExecute',
  'ExecuteOp',
  'SystemConfig',
]);

/** Checkpoint plumbing every SavedModel has: reported for the record only. */
const CHECKPOINT_OPS = new Set(['Save', 'SaveV2', 'RestoreV2', 'MergeV2Checkpoints']);

/** Ops with side effects worth knowing about, but common in ordinary models. */
const SIDE_EFFECT_OPS = new Set([
  'LoadAndRemapMatrix',
  'LookupTableImport',
  'LookupTableImportV2',
  'InitializeTable',
  'InitializeTableV2',
  'QueueEnqueue',
  'QueueEnqueueV2',
  'QueueEnqueueMany',
  'QueueDequeue',
  'QueueDequeueV2',
  'QueueDequeueMany',
  'Print',
  'PrintV2',
  'Assert',
  'Abort',
  'DecodeRaw',
  'DecodeJpeg',
  'DecodePng',
]);

const MAX_NODES = 5_000_000;

export interface TensorflowCheck {
  issues: FormatIssue[];
  /** Keras configs found in the graph's object metadata, as JSON text. */
  kerasConfigs: string[];
  /** How many nodes were walked (graph and function library). */
  nodes: number;
}

class GraphWalk {
  readonly ops = new Map<string, number>();
  readonly kerasConfigs: string[] = [];
  nodes = 0;
  constructor(private readonly src: ByteSource) {}

  private sub(f: Field): Generator<Field> {
    if (f.wire !== WIRE_LEN) throw new ProtoError(`field ${f.no} at ${f.start} is not a message`);
    return fields(this.src, f.start, f.end);
  }

  savedModel(f: Field | undefined): void {
    for (const g of f ? this.sub(f) : fields(this.src))
      if (g.no === 2) this.metaGraph(g);
      else if (g.no !== 1 || g.wire !== WIRE_VARINT)
        throw new ProtoError(`field ${g.no} at ${g.start} is not part of a SavedModel`);
  }

  metaGraph(f: Field): void {
    for (const g of this.sub(f)) {
      if (g.no === 2) this.graph(g);
      else if (g.no === 7) this.objectGraph(g);
    }
  }

  graph(f: Field | undefined): void {
    for (const g of f ? this.sub(f) : fields(this.src)) {
      if (g.no === 1) this.node(g);
      else if (g.no === 2) this.library(g);
    }
  }

  library(f: Field): void {
    for (const g of this.sub(f))
      if (g.no === 1) for (const h of this.sub(g)) if (h.no === 3) this.node(h);
  }

  node(f: Field): void {
    if (++this.nodes > MAX_NODES) throw new WalkLimitError(`more than ${MAX_NODES} nodes`);
    for (const g of this.sub(f))
      if (g.no === 2) {
        const op = text(this.src, g, 256);
        this.ops.set(op, (this.ops.get(op) ?? 0) + 1);
      }
  }

  /** SavedObjectGraph: user objects (field 4) carry Keras' metadata JSON in field 3. */
  objectGraph(f: Field): void {
    for (const g of this.sub(f)) {
      if (g.no !== 1) continue;
      for (const h of this.sub(g)) {
        if (h.no !== 4) continue;
        for (const u of this.sub(h))
          if (u.no === 3) this.kerasConfigs.push(text(this.src, u, 64 * 1024 * 1024));
      }
    }
  }

  /** keras_metadata.pb: SavedMetadata { repeated SavedObject nodes = 1 { metadata = 5 } }. */
  kerasMetadata(): void {
    for (const g of fields(this.src)) {
      if (g.no !== 1) throw new ProtoError(`field ${g.no} is not part of Keras metadata`);
      for (const h of this.sub(g))
        if (h.no === 5) this.kerasConfigs.push(text(this.src, h, 64 * 1024 * 1024));
    }
  }
}

/** Which reading a `.pb` file gets, from its name. */
export function tensorflowKind(name: string): 'saved-model' | 'keras-metadata' | 'graph' | null {
  const base = name.split('/').pop() ?? name;
  if (/^saved_model\.pb$/i.test(base)) return 'saved-model';
  if (/^keras_metadata\.pb$/i.test(base)) return 'keras-metadata';
  if (/\.pb$/i.test(base)) return 'graph';
  return null;
}

/** Checks a TensorFlow protobuf file; a `.pb` of unknown kind is told apart by its first field. */
export function checkTensorflow(
  src: ByteSource,
  kind: 'saved-model' | 'keras-metadata' | 'graph',
): TensorflowCheck {
  const walk = new GraphWalk(src);
  const issues: FormatIssue[] = [];
  try {
    if (kind === 'keras-metadata') walk.kerasMetadata();
    else if (kind === 'saved-model') walk.savedModel(undefined);
    else {
      // A SavedModel starts with its schema version (field 1, a varint); a GraphDef with nodes
      // (field 1, messages).
      const first = fields(src).next();
      if (!first.done && first.value.no === 1 && first.value.wire === WIRE_VARINT)
        walk.savedModel(undefined);
      else walk.graph(undefined);
    }
  } catch (e) {
    issues.push(
      stoppedWalk(
        e,
        'tensorflow',
        'Not a readable TensorFlow protobuf; what came before the error was still checked',
      ),
    );
  }
  for (const [op, count] of [...walk.ops].sort()) {
    const detail = `${count} node${count === 1 ? '' : 's'}`;
    if (DANGEROUS_OPS.has(op))
      issues.push({
        ruleId: `tensorflow.dangerous-op/${op}`,
        severity: 'high',
        title: `Graph uses ${op}, which ${/Py|Exec|Shell|System/.test(op) ? 'runs code outside the graph' : 'reads or writes files'} when the model runs`,
        detail,
        references: ['CWE-94', 'AML.T0011.000'],
      });
    else if (SIDE_EFFECT_OPS.has(op))
      issues.push({
        ruleId: `tensorflow.side-effect-op/${op}`,
        severity: 'low',
        title: `Graph uses ${op}, an op with side effects`,
        detail,
      });
    else if (CHECKPOINT_OPS.has(op))
      issues.push({
        ruleId: `tensorflow.checkpoint-op/${op}`,
        severity: 'info',
        title: `Graph uses ${op} (checkpoint saving and restoring)`,
        detail,
      });
  }
  return { issues, kerasConfigs: walk.kerasConfigs, nodes: walk.nodes };
}
