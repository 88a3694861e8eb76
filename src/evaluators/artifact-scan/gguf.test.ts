import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkChatTemplate } from './gguf.js';
import { scanPaths } from './scanner.js';

const dir = mkdtempSync(join(tmpdir(), 'modelgate-gguf-'));
const u32 = (n: number) => Buffer.from(new Uint32Array([n]).buffer);
const u64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
};
const gstr = (s: string) => Buffer.concat([u64(BigInt(Buffer.byteLength(s))), Buffer.from(s)]);

function gguf(parts: Buffer[]): string {
  const p = join(dir, `${Math.random().toString(36).slice(2)}.gguf`);
  writeFileSync(p, Buffer.concat([Buffer.from('GGUF'), ...parts]));
  return p;
}
const rules = (p: string) => scanPaths([p]).findings.map((f) => `${f.severity} ${f.ruleId}`);

describe('GGUF checks', () => {
  it('reports malformed headers, absurd counts, bad alignment and path-like keys', () => {
    expect(rules(gguf([u32(9)]))).toEqual(['medium gguf.malformed']);
    expect(rules(gguf([u32(3), u64(10n ** 12n), u64(0n)]))).toEqual(['medium gguf.limit']);
    expect(
      rules(gguf([u32(3), u64(0n), u64(1n), gstr('general.alignment'), u32(4), u32(24)])),
    ).toEqual(['medium gguf.alignment']);
    expect(
      rules(gguf([u32(3), u64(0n), u64(1n), gstr('../../etc/passwd'), u32(4), u32(1)])),
    ).toEqual(['medium gguf.metadata-key']);
    expect(rules(gguf([u32(3), u64(0n), u64(1n), gstr('k'), u32(8), u64(10n ** 15n)]))).toEqual([
      'medium gguf.malformed',
    ]);
    expect(
      rules(gguf([u32(3), u64(1n), u64(0n), gstr('t'), u32(1), u64(4n), u32(0), u64(1n << 40n)])),
    ).toEqual(['medium gguf.tensor-bounds']);
  });

  it('flags template-injection markers in chat templates, not ordinary templates', () => {
    expect(checkChatTemplate('t', "{% if m.role == 'system' %}{{ m.content }}{% endif %}")).toEqual(
      [],
    );
    expect(checkChatTemplate('t', "{{ x['__globals__'] }}")[0]?.ruleId).toBe(
      'gguf.chat-template/ssti',
    );
    expect(
      checkChatTemplate('t', '{{ lipsum.__globals__.os.popen("id").read() }}')[0]?.severity,
    ).toBe('high');
    expect(checkChatTemplate('t', '{% for %}')[0]?.ruleId).toBe('gguf.chat-template/unparseable');
  });
});
