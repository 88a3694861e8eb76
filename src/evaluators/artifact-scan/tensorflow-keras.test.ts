import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { int, len, msg } from '../../../test/helpers/protobuf.js';
import { checkKerasConfig } from './keras.js';
import { scanPaths } from './scanner.js';

const dir = mkdtempSync(join(tmpdir(), 'mg-tf-'));
let n = 0;
function file(name: string, b: Buffer): string {
  const d = join(dir, `m${n++}`);
  mkdirSync(d);
  writeFileSync(join(d, name), b);
  return d;
}
const rules = (p: string) => scanPaths([p]).findings.map((f) => `${f.severity} ${f.ruleId}`);

// tensorflow/core/framework/graph.proto and protobuf/meta_graph.proto field numbers.
const node = (op: string) => len(1, msg(len(1, `n_${op}`), len(2, op)));
const savedModel = (...graph: Buffer[]) => msg(int(1, 1), len(2, len(2, msg(...graph))));

describe('TensorFlow graphs', () => {
  it('flags file and Python ops, in the graph and in its function library', () => {
    expect(rules(file('saved_model.pb', savedModel(node('MatMul'), node('ReadFile'))))).toEqual([
      'high tensorflow.dangerous-op/ReadFile',
    ]);
    const fn = len(2, len(1, msg(len(1, len(1, 'f')), len(3, msg(len(2, 'PyFunc'))))));
    expect(rules(file('saved_model.pb', savedModel(node('Relu'), fn)))).toEqual([
      'high tensorflow.dangerous-op/PyFunc',
    ]);
  });

  it('tells a frozen GraphDef from a SavedModel by its first field', () => {
    expect(rules(file('frozen.pb', msg(node('Placeholder'), node('WriteFile'))))).toEqual([
      'high tensorflow.dangerous-op/WriteFile',
    ]);
    expect(rules(file('frozen.pb', savedModel(node('SaveV2'), node('Print'))))).toEqual([
      'low tensorflow.side-effect-op/Print',
      'info tensorflow.checkpoint-op/SaveV2',
    ]);
  });

  it('reports a broken protobuf, with what came before the break', () => {
    const good = savedModel(node('ReadFile'));
    const broken = Buffer.concat([good, Buffer.from([0x12, 0x40, 0x01])]);
    expect(rules(file('saved_model.pb', broken))).toEqual([
      'high tensorflow.dangerous-op/ReadFile',
      'medium tensorflow.unparseable',
    ]);
  });
});

describe('Keras configs', () => {
  const rulesOf = (config: unknown) =>
    checkKerasConfig(JSON.stringify(config), 'test').issues.map((i) => `${i.severity} ${i.ruleId}`);
  const k3 = (module: string, class_name: string, config: unknown) => ({
    module,
    class_name,
    config,
    registered_name: null,
  });

  it('passes plain Keras layers, and reports custom objects at medium', () => {
    expect(
      rulesOf(k3('keras', 'Sequential', { layers: [k3('keras.layers', 'Dense', {})] })),
    ).toEqual([]);
    expect(
      rulesOf(k3('keras', 'Sequential', { layers: [k3('my_pkg.layers', 'Fancy', {})] })),
    ).toEqual(['medium keras.custom-object']);
  });

  it('tells a Lambda with bytecode from one naming a function', () => {
    expect(rulesOf({ class_name: 'Lambda', config: { function: ['YWJj', null, null] } })).toEqual([
      'high keras.lambda/bytecode',
    ]);
    expect(
      rulesOf({ class_name: 'Lambda', config: { function: 'my_fn', function_type: 'raw' } }),
    ).toEqual(['medium keras.lambda']);
  });

  it('flags dangerous module references and Keras hazards', () => {
    expect(rulesOf(k3('subprocess', 'function', 'Popen'))).toEqual([
      'critical keras.unsafe-reference',
    ]);
    expect(rulesOf(k3('requests.api', 'function', 'get'))).toEqual(['high keras.unsafe-reference']);
    expect(rulesOf(k3('keras.src.utils.file_utils', 'function', 'get_file'))).toEqual([
      'high keras.unsafe-reference',
    ]);
  });

  it('reports invalid and oversized configs instead of failing, and survives deep nesting', () => {
    expect(checkKerasConfig('{"a": ', 't').issues[0]?.ruleId).toBe('keras.unparseable-config');
    const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    expect(checkKerasConfig(deep, 't').issues).toEqual([]);
  });

  it('reports an HDF5 file the library cannot read', () => {
    const h5 = Buffer.concat([
      Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]),
      Buffer.alloc(64, 7),
    ]);
    expect(rules(file('model.h5', h5))).toEqual(['medium hdf5.unparseable']);
  });
});
