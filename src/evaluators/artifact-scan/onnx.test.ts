import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { int, len, msg } from '../../../test/helpers/protobuf.js';
import { BufferSource, fields, ints, ProtoError } from './protobuf-wire.js';
import { scanPaths } from './scanner.js';

// ModelProto field numbers, from onnx/onnx.proto3.
const node = (op: string, domain = '') =>
  len(1, msg(len(4, op), ...(domain ? [len(7, domain)] : [])));
const tensor = (...parts: Buffer[]) => len(5, msg(...parts));
const external = (location: string, extra: [string, string][] = []) =>
  msg(
    int(14, 1),
    ...[['location', location] as [string, string], ...extra].map(([k, v]) =>
      len(13, msg(len(1, k), len(2, v))),
    ),
  );
const model = (...graph: Buffer[]) => msg(int(1, 8), len(7, msg(...graph)));

const dir = mkdtempSync(join(tmpdir(), 'mg-onnx-'));
let n = 0;
function folder(files: Record<string, Buffer>): string {
  const d = join(dir, `m${n++}`);
  mkdirSync(d);
  for (const [name, b] of Object.entries(files)) writeFileSync(join(d, name), b);
  return d;
}
const rules = (p: string) => scanPaths([p]).findings.map((f) => `${f.severity} ${f.ruleId}`);

describe('ONNX checks', () => {
  it('accepts standard operators and external data that stays inside the folder', () => {
    const w = tensor(
      int(1, 2),
      int(1, 2),
      int(2, 1),
      len(8, 'w'),
      external('w.bin', [['length', '16']]),
    );
    const d = folder({
      'm.onnx': model(node('MatMul'), node('Normalizer', 'ai.onnx.ml'), w),
      'w.bin': Buffer.alloc(16),
    });
    expect(rules(d)).toEqual([]);
    // The external data file is recognised as tensor bytes, not scanned as a broken pickle.
    expect(scanPaths([d]).files.map((f) => f.format)).toEqual(['onnx', 'onnx-external-data']);
  });

  it('flags custom domains at medium and Python operators at high', () => {
    const d = folder({
      'm.onnx': model(node('Mine', 'com.example'), node('Mine2', 'com.example')),
    });
    expect(rules(d)).toEqual(['medium onnx.custom-domain']);
    const p = folder({ 'm.onnx': model(node('PythonOp', 'org.pytorch.aten')) });
    expect(rules(p)).toEqual(['high onnx.python-operator']);
  });

  it('flags external data that escapes, is missing, or is out of bounds', () => {
    const t = (loc: string, extra: [string, string][] = []) =>
      tensor(int(1, 4), int(2, 1), len(8, 'w'), external(loc, extra));
    expect(rules(folder({ 'm.onnx': model(t('/etc/passwd')) }))).toEqual([
      'high onnx.external-data/path-traversal',
    ]);
    expect(rules(folder({ 'm.onnx': model(t('a/../../x')) }))).toEqual([
      'high onnx.external-data/path-traversal',
    ]);
    expect(rules(folder({ 'm.onnx': model(t('gone.bin')) }))).toEqual([
      'medium onnx.external-data/missing',
    ]);
    expect(
      rules(folder({ 'm.onnx': model(t('w.bin', [['offset', '8']])), 'w.bin': Buffer.alloc(16) })),
    ).toEqual(['medium onnx.external-data/out-of-bounds']);
    expect(
      rules(folder({ 'm.onnx': model(t('w.bin', [['offset', '-1']])), 'w.bin': Buffer.alloc(16) })),
    ).toEqual(['medium onnx.external-data/malformed']);
  });

  it('checks tensor sizes against shape and type', () => {
    const bad = tensor(int(1, 4), int(2, 1), len(8, 'w'), len(9, Buffer.alloc(15)));
    expect(rules(folder({ 'm.onnx': model(bad) }))).toEqual(['medium onnx.tensor/size-mismatch']);
    const negative = tensor(int(1, -3), int(2, 1), len(8, 'w'));
    expect(rules(folder({ 'm.onnx': model(negative) }))).toEqual(['medium onnx.tensor/bad-shape']);
  });

  it('walks subgraphs, and stops at a nesting limit', () => {
    const escaping = tensor(int(1, 1), int(2, 1), external('../k.bin'));
    const ifNode = len(1, msg(len(4, 'If'), len(5, msg(len(1, 'then_branch'), len(6, escaping)))));
    expect(rules(folder({ 'm.onnx': model(ifNode) }))).toEqual([
      'high onnx.external-data/path-traversal',
    ]);
    let g: Buffer = msg(node('Relu'));
    for (let i = 0; i < 40; i++)
      g = len(1, msg(len(4, 'Loop'), len(5, msg(len(1, 'body'), len(6, g)))));
    expect(rules(folder({ 'm.onnx': model(g) }))).toEqual(['medium onnx.limit']);
  });

  it('reports files that are not ONNX models', () => {
    expect(rules(folder({ 'm.onnx': Buffer.from('not protobuf at all \xff\xff') }))).toEqual([
      'medium onnx.unparseable',
    ]);
    expect(rules(folder({ 'm.onnx': int(3, 1) }))).toEqual(['medium onnx.not-a-model']);
  });
});

describe('protobuf wire reader', () => {
  it('reads negative int64 values and packed repeated ints', () => {
    const b = msg(int(1, -1), len(2, Buffer.from([0x03, 0x8e, 0x02])));
    const src = new BufferSource(b);
    const [a, packed] = [...fields(src)];
    expect(a?.value).toBe(-1);
    expect(packed && ints(src, packed)).toEqual([3, 270]);
  });

  it('refuses lengths past the end, bad wire types and endless varints', () => {
    const all = (b: Buffer) => [...fields(new BufferSource(b))];
    expect(() => all(Buffer.from([0x0a, 0x05, 0x01]))).toThrow(ProtoError);
    expect(() => all(Buffer.from([0x0b]))).toThrow(/wire type 3/);
    expect(() => all(Buffer.from([0x08, ...Array(11).fill(0xff)]))).toThrow(ProtoError);
    expect(() => all(Buffer.from([0x08, 0xff]))).toThrow(/cut off/);
  });
});
