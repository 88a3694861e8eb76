import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scanPaths } from './scanner.js';

const dir = mkdtempSync(join(tmpdir(), 'modelgate-st-'));

function file(header: unknown, data: Buffer, rawHeader?: string, declared?: bigint): string {
  const h = Buffer.from(rawHeader ?? JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(declared ?? BigInt(h.length));
  const p = join(dir, `${Math.random().toString(36).slice(2)}.safetensors`);
  writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}

const rules = (p: string) => scanPaths([p]).findings.map((f) => `${f.severity} ${f.ruleId}`);
const f32x4 = Buffer.alloc(16);

describe('safetensors checks', () => {
  it('passes a well-formed file', () => {
    const p = file(
      { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] }, __metadata__: { format: 'pt' } },
      f32x4,
    );
    expect(scanPaths([p]).files[0]?.format).toBe('safetensors');
    expect(rules(p)).toEqual([]);
  });

  it('reports each structural violation with its own rule', () => {
    expect(
      rules(file({ w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, f32x4)),
    ).toEqual(['medium safetensors.tensor-size', 'low safetensors.trailing-data']);
    expect(
      rules(
        file(
          {
            a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
            b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
          },
          f32x4,
        ),
      ),
    ).toContain('medium safetensors.overlap');
    expect(
      rules(file({ w: { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }, f32x4)),
    ).toContain('medium safetensors.tensor-bounds');
    expect(
      rules(file({ w: { dtype: 'PICKLE', shape: [1], data_offsets: [0, 16] } }, f32x4)),
    ).toContain('medium safetensors.tensor-entry');
    expect(rules(file({ __metadata__: { k: 5 } }, Buffer.alloc(0)))).toContain(
      'medium safetensors.metadata',
    );
    expect(
      rules(file({ __metadata__: { url: 'see https://evil.example/x' } }, Buffer.alloc(0))),
    ).toContain('low safetensors.metadata-suspicious');
    expect(rules(file(null, f32x4, '{"w": '))).toEqual(['medium safetensors.malformed']);
    expect(rules(file(null, f32x4, '{"w": 1}', 10n ** 9n))).toEqual([
      'medium safetensors.header-size',
    ]);
  });
});
