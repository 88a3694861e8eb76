import { BufferReader, type ByteReader, TruncatedError } from './byte-reader.js';

/** A global the pickle imports, where, and whether it calls it. */
export interface PickleGlobal {
  module: string;
  name: string;
  offset: number;
  opcode: string;
  called: boolean;
}

/** Something structurally wrong or suspicious in the opcode stream. */
export interface PickleIssue {
  kind:
    | 'unresolved-global'
    | 'ext-code'
    | 'parse-error'
    | 'trailing-data'
    | 'limit'
    | 'build-on-global'
    | 'misplaced-proto'
    | 'unknown-memo';
  offset: number;
  detail: string;
}

/** An embedded payload that looks like a pickle (raw, base64 or hex). */
export interface EmbeddedPayload {
  offset: number;
  encoding: 'raw' | 'base64' | 'hex';
  bytes: Buffer;
}

/** What a static walk of one pickle stream saw. */
export interface PickleWalk {
  globals: PickleGlobal[];
  issues: PickleIssue[];
  embedded: EmbeddedPayload[];
  /** Number of complete pickles (STOP opcodes) in the stream. */
  pickles: number;
  opcodes: number;
  maxProtocol: number;
}

/** Bounds that keep a hostile stream from using unbounded memory. */
export interface WalkLimits {
  maxStack: number;
  maxMemo: number;
  maxPickles: number;
  maxTextArg: number;
  maxEmbedded: number;
}

export const DEFAULT_LIMITS: WalkLimits = {
  maxStack: 1_000_000,
  maxMemo: 1_000_000,
  maxPickles: 1000,
  maxTextArg: 64 * 1024,
  maxEmbedded: 16,
};

// Just enough of the values to resolve globals and to step over joblib's inline arrays:
// strings, small ints, tuples, dicts with string keys, and objects with their class.
type Val =
  | { t: 'mark' }
  | { t: 'str'; v: string }
  | { t: 'int'; v: number }
  | { t: 'tuple'; items: Val[] }
  | { t: 'dict'; map: Map<string, Val> }
  | { t: 'obj'; cls: PickleGlobal; args: Val }
  | { t: 'global'; g: PickleGlobal }
  | { t: 'other' };

const JOBLIB_WRAPPER = 'joblib.numpy_pickle.NumpyArrayWrapper';
// Item sizes of NumPy type codes ('f8' -> 8; 'U' counts 4 bytes a character).
function itemSize(descr: string): number | 'object' | undefined {
  const m = /^[<>|=]?([a-zA-Z])(\d*)$/.exec(descr);
  if (!m) return undefined;
  const kind = m[1] ?? '';
  if (kind === 'O') return 'object';
  const n = m[2] ? Number(m[2]) : kind === '?' || kind === 'b' || kind === 'B' ? 1 : Number.NaN;
  if (!Number.isFinite(n)) return undefined;
  return kind === 'U' ? n * 4 : n;
}

const MARK: Val = { t: 'mark' };
// Small ints are shared objects: numeric pickles push millions of them.
const SMALL_INTS: Val[] = Array.from({ length: 1024 }, (_, v) => ({ t: 'int', v }));
const intVal = (v: number): Val => SMALL_INTS[v] ?? { t: 'int', v };
const OTHER: Val = { t: 'other' };
// Tuples and dicts longer than this are not tracked element by element.
const MAX_TUPLE = 64;
const MAX_DICT = 64;
// Strings longer than this are kept only as "some string": globals are never this long.
const MAX_KEPT_STRING = 4096;
// Bytes and strings are checked for an embedded pickle in their first bytes only.
const EMBED_PREFIX = 64 * 1024;

// Trailing bytes are searched this far for a hidden pickle.
const TRAILING_LOOK = 1024 * 1024;
const B64_RE = /^[A-Za-z0-9+/\r\n]{16,}={0,2}\s*$/;
const HEX_RE = /^(?:[0-9a-fA-F]{2}){8,}$/;

function looksLikePickle(b: Buffer): boolean {
  return b.length >= 4 && b[0] === 0x80 && (b[1] ?? 0) >= 2 && (b[1] ?? 0) <= 5;
}

/** Pickle opcode names by byte, for messages. */
const NAMES: Record<number, string> = {};
for (const [name, ch] of Object.entries({
  MARK: '(',
  STOP: '.',
  POP: '0',
  POP_MARK: '1',
  DUP: '2',
  FLOAT: 'F',
  INT: 'I',
  BININT: 'J',
  BININT1: 'K',
  LONG: 'L',
  BININT2: 'M',
  NONE: 'N',
  PERSID: 'P',
  BINPERSID: 'Q',
  REDUCE: 'R',
  STRING: 'S',
  BINSTRING: 'T',
  SHORT_BINSTRING: 'U',
  UNICODE: 'V',
  BINUNICODE: 'X',
  APPEND: 'a',
  BUILD: 'b',
  GLOBAL: 'c',
  DICT: 'd',
  EMPTY_DICT: '}',
  APPENDS: 'e',
  GET: 'g',
  BINGET: 'h',
  INST: 'i',
  LONG_BINGET: 'j',
  LIST: 'l',
  EMPTY_LIST: ']',
  OBJ: 'o',
  PUT: 'p',
  BINPUT: 'q',
  LONG_BINPUT: 'r',
  SETITEM: 's',
  TUPLE: 't',
  EMPTY_TUPLE: ')',
  SETITEMS: 'u',
  BINFLOAT: 'G',
  PROTO: '\x80',
  NEWOBJ: '\x81',
  EXT1: '\x82',
  EXT2: '\x83',
  EXT4: '\x84',
  TUPLE1: '\x85',
  TUPLE2: '\x86',
  TUPLE3: '\x87',
  NEWTRUE: '\x88',
  NEWFALSE: '\x89',
  LONG1: '\x8a',
  LONG4: '\x8b',
  BINBYTES: 'B',
  SHORT_BINBYTES: 'C',
  SHORT_BINUNICODE: '\x8c',
  BINUNICODE8: '\x8d',
  BINBYTES8: '\x8e',
  EMPTY_SET: '\x8f',
  ADDITEMS: '\x90',
  FROZENSET: '\x91',
  NEWOBJ_EX: '\x92',
  STACK_GLOBAL: '\x93',
  MEMOIZE: '\x94',
  FRAME: '\x95',
  BYTEARRAY8: '\x96',
  NEXT_BUFFER: '\x97',
  READONLY_BUFFER: '\x98',
})) {
  NAMES[ch.charCodeAt(0)] = name;
}

/** Decodes Python's `repr` of a str/bytes literal loosely enough to recover a module name. */
function unquote(s: string): string {
  const m = /^(['"])(.*)\1$/s.exec(s.trim());
  return m ? (m[2] ?? '') : s;
}

/**
 * Walks a pickle stream opcode by opcode without executing anything, simulating just enough
 * of the stack and memo to resolve every global (GLOBAL, INST, STACK_GLOBAL through the
 * memo) and to see which of them are called (REDUCE, BUILD, OBJ, NEWOBJ, NEWOBJ_EX, INST).
 * Several pickles in one stream are walked in turn. A malformed stream yields a
 * `parse-error` issue with everything found before it.
 */
export function walkPickle(
  input: Buffer | ByteReader,
  limits: WalkLimits = DEFAULT_LIMITS,
  opts: { stopAfter?: number } = {},
): PickleWalk {
  const r = Buffer.isBuffer(input) ? new BufferReader(input) : input;
  const out: PickleWalk = {
    globals: [],
    issues: [],
    embedded: [],
    pickles: 0,
    opcodes: 0,
    maxProtocol: 0,
  };
  const base = r.pos;
  try {
    while (!r.eof()) {
      if (out.pickles >= limits.maxPickles) {
        out.issues.push({
          kind: 'limit',
          offset: r.pos,
          detail: `more than ${limits.maxPickles} pickles in one stream`,
        });
        break;
      }
      const start = r.pos;
      const first = r.peek();
      // After at least one pickle, anything that does not start a new one is trailing data.
      if (out.pickles > 0 && !NAMES[first]) {
        out.issues.push({
          kind: 'trailing-data',
          offset: start - base,
          detail: `${r.size - start} bytes after the last STOP`,
        });
        // A loader that reads on (or resynchronises) could find a pickle hidden in them.
        const rest = r.take(Math.min(r.size - r.pos, TRAILING_LOOK));
        for (
          let i = rest.indexOf(0x80);
          i >= 0 && out.embedded.length < limits.maxEmbedded;
          i = rest.indexOf(0x80, i + 1)
        ) {
          if (looksLikePickle(rest.subarray(i))) {
            out.embedded.push({
              offset: start - base + i,
              encoding: 'raw',
              bytes: Buffer.from(rest.subarray(i)),
            });
            break;
          }
        }
        break;
      }
      walkOne(r, out, limits);
      out.pickles++;
      // Legacy PyTorch files: raw tensor bytes follow the last pickle.
      if (opts.stopAfter !== undefined && out.pickles >= opts.stopAfter) break;
    }
  } catch (e) {
    const detail =
      e instanceof TruncatedError || e instanceof PickleSyntaxError ? e.message : String(e);
    out.issues.push({ kind: 'parse-error', offset: r.pos - base, detail });
  }
  return out;
}

class PickleSyntaxError extends Error {}
/** A bound of WalkLimits was reached. */
class WalkLimitError extends Error {}

function walkOne(r: ByteReader, out: PickleWalk, limits: WalkLimits): void {
  const stack: Val[] = [];
  const marks: number[] = [];
  const memo = new Map<number, Val>();
  let sawOpcode = false;

  const push = (v: Val) => {
    if (stack.length >= limits.maxStack)
      throw new WalkLimitError(`stack deeper than ${limits.maxStack}`);
    stack.push(v);
  };
  const pop = (): Val => (stack.length > 0 ? (stack.pop() ?? OTHER) : OTHER);
  const popMark = (): Val[] => {
    const m = marks.pop();
    if (m === undefined) return stack.splice(0);
    const items = stack.splice(m);
    items.shift(); // the mark itself
    return items;
  };
  const top = (): Val => stack[stack.length - 1] ?? OTHER;
  const text = (): string => r.line(limits.maxTextArg).toString('latin1');
  const u32 = () => r.take(4).readUInt32LE(0);
  const u64 = () => {
    const v = r.take(8).readBigUInt64LE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER))
      throw new PickleSyntaxError('an 8-byte length beyond any real file');
    return Number(v);
  };
  const called = (v: Val | undefined) => {
    if (v?.t === 'global') v.g.called = true;
  };
  const addGlobal = (module: string, name: string, offset: number, opcode: string): Val => {
    const g: PickleGlobal = { module, name, offset, opcode, called: false };
    out.globals.push(g);
    return { t: 'global', g };
  };
  const memoPut = (k: number) => {
    if (memo.size >= limits.maxMemo && !memo.has(k))
      throw new WalkLimitError(`memo larger than ${limits.maxMemo}`);
    memo.set(k, top());
  };
  const memoGet = (k: number, at: number) => {
    const v = memo.get(k);
    if (!v)
      out.issues.push({
        kind: 'unknown-memo',
        offset: at,
        detail: `memo key ${k} read before it was written`,
      });
    push(v ?? OTHER);
  };
  const checkEmbedded = (b: Buffer, at: number) => {
    if (out.embedded.length >= limits.maxEmbedded || b.length < 8) return;
    const head = b.subarray(0, EMBED_PREFIX);
    if (looksLikePickle(head)) {
      out.embedded.push({ offset: at, encoding: 'raw', bytes: Buffer.from(b) });
      return;
    }
    const s = head.toString('latin1');
    if (b.length !== head.length) return;
    // Hex digits are also base64 characters: try hex first.
    if (HEX_RE.test(s)) {
      const d = Buffer.from(s, 'hex');
      if (looksLikePickle(d)) {
        out.embedded.push({ offset: at, encoding: 'hex', bytes: d });
        return;
      }
    }
    if (B64_RE.test(s)) {
      const d = Buffer.from(s, 'base64');
      if (looksLikePickle(d)) out.embedded.push({ offset: at, encoding: 'base64', bytes: d });
    }
  };
  const pushString = (b: Buffer, at: number, encoding: 'utf8' | 'latin1') => {
    checkEmbedded(b, at);
    push(b.length <= MAX_KEPT_STRING ? { t: 'str', v: b.toString(encoding) } : OTHER);
  };
  const pushBytes = (n: number, at: number) => {
    if (n <= EMBED_PREFIX) checkEmbedded(r.take(n), at);
    else {
      // Large buffers (tensor data in legacy files) are skipped after a look at their start.
      const head = r.take(Math.min(n, 16));
      if (looksLikePickle(head))
        out.issues.push({
          kind: 'parse-error',
          offset: at,
          detail: 'a large embedded buffer starts like a pickle',
        });
      r.skip(n - head.length);
    }
    push(OTHER);
  };

  const setItem = (d: Val, k: Val | undefined, v: Val | undefined) => {
    if (d.t === 'dict' && k?.t === 'str' && v && d.map.size < MAX_DICT) d.map.set(k.v, v);
  };
  // joblib writes each NumPy array's bytes straight into the stream after the wrapper's
  // BUILD; its loader reads them from there. Step over them exactly as it does, so that
  // what follows is walked too (a payload placed after an array is not hidden).
  const skipJoblibArray = (state: Val, at: number) => {
    const fail = (why: string) => {
      throw new PickleSyntaxError(`joblib array at offset ${at}: ${why}`);
    };
    if (state.t !== 'dict') return fail('wrapper state is not a dict');
    const shape = state.map.get('shape');
    const dtype = state.map.get('dtype');
    if (shape?.t !== 'tuple' || shape.items.some((x) => x.t !== 'int' || x.v < 0))
      return fail('shape is not a tuple of sizes');
    const descr = dtype?.t === 'obj' && dtype.args.t === 'tuple' ? dtype.args.items[0] : undefined;
    if (descr?.t !== 'str') return fail('dtype is not numpy.dtype(<code>)');
    const size = itemSize(descr.v);
    if (size === undefined) return fail(`unsupported dtype ${descr.v}`);
    if (size === 'object') {
      // Object arrays are written as a protocol-2 pickle of their own: walk it.
      walkOne(r, out, limits);
      out.pickles++;
      return;
    }
    const count = shape.items.reduce((n, x) => n * (x.t === 'int' ? x.v : 0), 1);
    const align = state.map.get('numpy_array_alignment_bytes');
    if (align?.t === 'int') r.skip(r.u8());
    const bytes = count * size;
    if (!Number.isSafeInteger(bytes) || bytes > r.size - r.pos)
      return fail(`array of ${bytes} bytes runs past the end`);
    r.skip(bytes);
  };

  for (;;) {
    const at = r.pos;
    const op = r.u8();
    out.opcodes++;
    const name = NAMES[op];
    if (!name)
      throw new PickleSyntaxError(
        `unknown opcode 0x${op.toString(16).padStart(2, '0')} at offset ${at}`,
      );
    switch (op) {
      case 0x80 /* PROTO */:
        {
          const p = r.u8();
          if (p > 5) throw new PickleSyntaxError(`unsupported protocol ${p}`);
          out.maxProtocol = Math.max(out.maxProtocol, p);
          if (sawOpcode)
            out.issues.push({
              kind: 'misplaced-proto',
              offset: at,
              detail: 'PROTO after the first opcode',
            });
          break;
        }
      case 0x95 /* FRAME */:
        u64();
        break;
      case 0x2e /* STOP */:
        return;
      case 0x28 /* MARK */:
        marks.push(stack.length);
        push(MARK);
        break;
      case 0x30 /* POP */:
        if (top().t === 'mark') marks.pop();
        pop();
        break;
      case 0x31 /* POP_MARK */:
        popMark();
        break;
      case 0x32 /* DUP */:
        push(top());
        break;
      case 0x46 /* FLOAT */:
      case 0x49 /* INT */:
      case 0x4c /* LONG */:
        text();
        push(OTHER);
        break;
      case 0x4a /* BININT */:
        push(intVal(r.take(4).readInt32LE(0)));
        break;
      case 0x4b /* BININT1 */:
        push(intVal(r.u8()));
        break;
      case 0x4d /* BININT2 */:
        push(intVal(r.take(2).readUInt16LE(0)));
        break;
      case 0x47 /* BINFLOAT */:
        r.skip(8);
        push(OTHER);
        break;
      case 0x8a /* LONG1 */:
        {
          const n = r.u8();
          const v = r.take(n);
          push(n > 0 && n <= 6 ? { t: 'int', v: v.readIntLE(0, n) } : OTHER);
          break;
        }
      case 0x8b /* LONG4 */:
        r.skip(u32());
        push(OTHER);
        break;
      case 0x7d /* EMPTY_DICT */:
        push({ t: 'dict', map: new Map() });
        break;
      case 0x29 /* EMPTY_TUPLE */:
        push({ t: 'tuple', items: [] });
        break;
      case 0x4e /* NONE */:
      case 0x88 /* NEWTRUE */:
      case 0x89 /* NEWFALSE */:
      case 0x5d /* EMPTY_LIST */:
      case 0x8f /* EMPTY_SET */:
      case 0x97 /* NEXT_BUFFER */:
        push(OTHER);
        break;
      case 0x50 /* PERSID */:
        text();
        push(OTHER);
        break;
      case 0x51 /* BINPERSID */:
        pop();
        push(OTHER);
        break;
      case 0x53 /* STRING */:
        pushString(Buffer.from(unquote(text()), 'latin1'), at, 'latin1');
        break;
      case 0x54 /* BINSTRING */:
        pushString(r.take(u32()), at, 'latin1');
        break;
      case 0x55 /* SHORT_BINSTRING */:
        pushString(r.take(r.u8()), at, 'latin1');
        break;
      case 0x56 /* UNICODE */:
        pushString(r.line(limits.maxTextArg), at, 'utf8');
        break;
      case 0x58 /* BINUNICODE */:
        {
          const n = u32();
          if (n > MAX_KEPT_STRING) {
            pushBytes(n, at);
            break;
          }
          pushString(r.take(n), at, 'utf8');
          break;
        }
      case 0x8c /* SHORT_BINUNICODE */:
        pushString(r.take(r.u8()), at, 'utf8');
        break;
      case 0x8d /* BINUNICODE8 */:
        pushBytes(u64(), at);
        break;
      case 0x42 /* BINBYTES */:
        pushBytes(u32(), at);
        break;
      case 0x43 /* SHORT_BINBYTES */:
        pushBytes(r.u8(), at);
        break;
      case 0x8e /* BINBYTES8 */:
      case 0x96 /* BYTEARRAY8 */:
        pushBytes(u64(), at);
        break;
      case 0x98 /* READONLY_BUFFER */:
        break;
      case 0x63 /* GLOBAL */:
      case 0x69 /* INST */:
        {
          const module = text();
          const gname = text();
          const g = addGlobal(module, gname, at, name);
          if (op === 0x69) {
            (g as { t: 'global'; g: PickleGlobal }).g.called = true;
            popMark();
            push(OTHER);
          } else push(g);
          break;
        }
      case 0x93 /* STACK_GLOBAL */:
        {
          const n = pop();
          const m = pop();
          if (m.t === 'str' && n.t === 'str') push(addGlobal(m.v, n.v, at, name));
          else {
            out.issues.push({
              kind: 'unresolved-global',
              offset: at,
              detail:
                'STACK_GLOBAL operands are not plain strings: the imported name is computed at load time',
            });
            push(addGlobal('?', '?', at, name));
          }
          break;
        }
      case 0x82 /* EXT1 */:
      case 0x83 /* EXT2 */:
      case 0x84 /* EXT4 */:
        {
          const code = op === 0x82 ? r.u8() : op === 0x83 ? r.take(2).readUInt16LE(0) : u32();
          out.issues.push({
            kind: 'ext-code',
            offset: at,
            detail: `extension registry code ${code}: the global is chosen by the loading process`,
          });
          push(OTHER);
          break;
        }
      case 0x52 /* REDUCE */:
      case 0x81 /* NEWOBJ */:
        {
          const args = pop();
          const fn = pop();
          called(fn);
          push(fn.t === 'global' ? { t: 'obj', cls: fn.g, args } : OTHER);
          break;
        }
      case 0x62 /* BUILD */:
        {
          const state = pop();
          const obj = top();
          if (obj.t === 'obj' && `${obj.cls.module}.${obj.cls.name}` === JOBLIB_WRAPPER) {
            skipJoblibArray(state, at);
            break;
          }
          if (obj.t === 'global') {
            obj.g.called = true;
            out.issues.push({
              kind: 'build-on-global',
              offset: at,
              detail: `BUILD sets state on ${obj.g.module}.${obj.g.name} itself`,
            });
          }
          break;
        }
      case 0x92 /* NEWOBJ_EX */:
        {
          pop();
          pop();
          called(pop());
          push(OTHER);
          break;
        }
      case 0x6f /* OBJ */:
        {
          const items = popMark();
          called(items[0]);
          push(OTHER);
          break;
        }
      case 0x61 /* APPEND */:
        pop();
        break;
      case 0x65 /* APPENDS */:
      case 0x90 /* ADDITEMS */:
        popMark();
        break;
      case 0x75 /* SETITEMS */:
        {
          const items = popMark();
          const d = top();
          for (let i = 0; i + 1 < items.length; i += 2) setItem(d, items[i], items[i + 1]);
          break;
        }
      case 0x73 /* SETITEM */:
        {
          const v = pop();
          const k = pop();
          setItem(top(), k, v);
          break;
        }
      case 0x74 /* TUPLE */:
        {
          const items = popMark();
          push(items.length <= MAX_TUPLE ? { t: 'tuple', items } : OTHER);
          break;
        }
      case 0x6c /* LIST */:
      case 0x64 /* DICT */:
      case 0x91 /* FROZENSET */:
        popMark();
        push(OTHER);
        break;
      case 0x85 /* TUPLE1 */:
        push({ t: 'tuple', items: [pop()] });
        break;
      case 0x86 /* TUPLE2 */:
        {
          const b2 = pop();
          push({ t: 'tuple', items: [pop(), b2] });
          break;
        }
      case 0x87 /* TUPLE3 */:
        {
          const c3 = pop();
          const b3 = pop();
          push({ t: 'tuple', items: [pop(), b3, c3] });
          break;
        }
      case 0x70 /* PUT */:
        memoPut(Number.parseInt(text(), 10));
        break;
      case 0x71 /* BINPUT */:
        memoPut(r.u8());
        break;
      case 0x72 /* LONG_BINPUT */:
        memoPut(u32());
        break;
      case 0x94 /* MEMOIZE */:
        memoPut(memo.size);
        break;
      case 0x67 /* GET */:
        memoGet(Number.parseInt(text(), 10), at);
        break;
      case 0x68 /* BINGET */:
        memoGet(r.u8(), at);
        break;
      case 0x6a /* LONG_BINGET */:
        memoGet(u32(), at);
        break;
      default:
        throw new PickleSyntaxError(`opcode ${name} not handled`);
    }
    sawOpcode = true;
  }
}
