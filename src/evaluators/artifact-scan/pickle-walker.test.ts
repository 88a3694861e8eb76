import { describe, expect, it } from 'vitest';
import { walkPickle } from './pickle-walker.js';

const su = (s: string) =>
  Buffer.concat([Buffer.from([0x8c, Buffer.byteLength(s)]), Buffer.from(s)]);
const b = (...parts: (string | Buffer)[]) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));

describe('pickle opcode walker', () => {
  it('resolves STACK_GLOBAL operands through PUT/BINPUT/MEMOIZE and GET/BINGET/LONG_BINGET', () => {
    const w = walkPickle(
      b(
        '\x80\x04',
        su('os'),
        'q\x07',
        '0',
        su('system'),
        '\x94',
        '0',
        'h\x07',
        'j\x01\x00\x00\x00',
        '\x93',
        su('id'),
        '\x85R.',
      ),
    );
    expect(w.globals).toMatchObject([
      { module: 'os', name: 'system', opcode: 'STACK_GLOBAL', called: true, offset: 26 },
    ]);
    expect(w.issues).toEqual([]);
    expect(w.pickles).toBe(1);
  });

  it('reports STACK_GLOBAL on computed operands as unresolved', () => {
    const w = walkPickle(
      b('\x80\x04', su('builtins'), su('str'), '\x93', su('os'), '\x85R', su('system'), '\x93)R.'),
    );
    expect(w.issues.map((i) => i.kind)).toEqual(['unresolved-global']);
  });

  it('sees calls through REDUCE, OBJ, NEWOBJ, INST and BUILD on a global', () => {
    const w = walkPickle(
      b('\x80\x02', 'cm1\nf\n)R', '(cm2\nC\no', 'cm3\nC\n)\x81', '(im4\nC\n', 'cm5\nC\n}b', 't.'),
    );
    expect(w.globals.map((g) => `${g.module}:${g.called}`)).toEqual([
      'm1:true',
      'm2:true',
      'm3:true',
      'm4:true',
      'm5:true',
    ]);
    expect(w.issues.map((i) => i.kind)).toContain('build-on-global');
  });

  it('walks several pickles in one stream and keeps what it saw before a parse error', () => {
    const w = walkPickle(
      b('\x80\x02]q\x00.', '\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R', '\x80\x02'),
    );
    expect(w.pickles).toBe(1);
    expect(w.globals.map((g) => g.name)).toEqual(['system']);
    expect(w.issues.at(-1)?.kind).toBe('parse-error');
  });

  it('finds raw, base64 and hex pickles embedded in values, and pickles hidden after trailing bytes', () => {
    const inner = b('\x80\x04', su('os'), su('system'), '\x93', su('id'), '\x85R.');
    const raw = walkPickle(b('\x80\x04C', Buffer.from([inner.length]), inner, '.'));
    expect(raw.embedded.map((e) => e.encoding)).toEqual(['raw']);
    const b64 = inner.toString('base64');
    expect(walkPickle(b('\x80\x04', su(b64), '.')).embedded.map((e) => e.encoding)).toEqual([
      'base64',
    ]);
    expect(
      walkPickle(b('\x80\x04', su(inner.toString('hex')), '.')).embedded.map((e) => e.encoding),
    ).toEqual(['hex']);
    const hidden = walkPickle(b('\x80\x02]q\x00.', '\x00junk', inner));
    expect(hidden.issues.map((i) => i.kind)).toEqual(['trailing-data']);
    expect(hidden.embedded[0]?.bytes.equals(inner)).toBe(true);
  });

  it('handles every protocol-0 text opcode without executing anything', () => {
    const w = walkPickle(b("(dp0\nS'a'\np1\nI1\nsVb\np2\nF1.5\nsL7L\n(lp3\ng1\nag2\nas."));
    expect(w.issues).toEqual([]);
    expect(w.globals).toEqual([]);
  });

  it('refuses absurd lengths and unknown opcodes as parse errors, never throwing', () => {
    for (const bad of [
      b('\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xff'),
      b('\xff'),
      b('\x80\x09.'),
      b('X\xff\xff\xff\x7f'),
    ]) {
      const w = walkPickle(bad);
      expect(w.issues.at(-1)?.kind).toBe('parse-error');
    }
  });
});
