import { Environment } from '@marcbachmann/cel-js';
import { RE2_MATCHES, re2Matches } from './re2.js';

/*
 * A compiler from type-checked cel-js expressions to JavaScript closures, for what-if runs that
 * evaluate one policy over a whole portfolio. cel-js interprets: every node dispatches its
 * operator on runtime types, so the shipped production policy costs several microseconds per
 * version. The closures do what cel-js's handlers do for the well-typed common case, and
 * nothing else:
 *
 * - Only nodes whose types the checker fixed, and only the operators and functions listed
 *   below, compile; an expression with anything else does not compile at all (null), and its
 *   policy is evaluated by cel-js.
 * - At run time, anything off the common case (an absent field, an index out of range, an
 *   overflow, a dyn value of a type the closure does not handle, a non-bool condition) throws
 *   `Fallback`. The caller then evaluates the whole snapshot with cel-js, so errors, error
 *   absorption by `&&`, `||` and `exists`, and error messages are always cel-js's own.
 *
 * So a compiled expression either returns exactly what cel-js returns or throws; the
 * differential tests (compiled-cel.test.ts) hold it to that on random facts and expressions.
 */

/** Thrown by a compiled expression when cel-js must decide. */
export class Fallback extends Error {
  constructor(why: string) {
    super(why);
    this.name = 'Fallback';
  }
}

/** What a compiled expression reads: the facts, the policy's variables, comprehension locals. */
export interface Frame {
  readonly ctx: Record<string, unknown>;
  readonly variable: (name: string) => unknown;
  readonly locals: unknown[];
}

export type Compiled = (f: Frame) => unknown;

interface Node {
  op: string;
  args: unknown;
  checkedType?: { name: string };
}

const MAX_INT = 9223372036854775807n;
const MIN_INT = -9223372036854775808n;
const PRIMITIVE = new Set(['string', 'bool', 'int', 'double', 'null']);
const ORDERED = new Set([
  'string',
  'int',
  'double',
  'google.protobuf.Timestamp',
  'google.protobuf.Duration',
]);
const TIMESTAMP = 'google.protobuf.Timestamp';

class Unsupported extends Error {}

const EMPTY: Frame = {
  ctx: {},
  variable: () => fail('no variables'),
  locals: [],
};

const fail = (why: string): never => {
  throw new Fallback(why);
};
const bool = (v: unknown): boolean => (typeof v === 'boolean' ? v : fail('not a bool'));
const int = (v: bigint): bigint => (v <= MAX_INT && v >= MIN_INT ? v : fail('int overflow'));

/**
 * CEL equality of two values, one of them of a dyn type, as cel-js decides it for scalars:
 * identical scalars are equal, an int equals a double of the same value, values of different
 * scalar kinds (or null and anything else) are not. Lists, maps, timestamps and messages on
 * both sides go to cel-js.
 */
function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  const ta = typeof a;
  const tb = typeof b;
  // CEL compares an int and a double by value, as JavaScript's == does for bigint and number.
  if ((ta === 'bigint' && tb === 'number') || (ta === 'number' && tb === 'bigint'))
    // biome-ignore lint/suspicious/noDoubleEquals: the comparison by value is the point
    return (a as number) == (b as number);
  const sa = a === null || ta !== 'object';
  const sb = b === null || tb !== 'object';
  if (sa && sb) return false;
  // An object (list, map, timestamp, message) against a scalar or null is never equal.
  if (sa !== sb) return false;
  return fail('equality of lists, maps or messages');
}

function typeOf(n: Node): string {
  const t = n.checkedType?.name;
  if (t === undefined) throw new Unsupported('an unchecked node');
  return t;
}

const isList = (t: string) => t.startsWith('list<');
const isMap = (t: string) => t.startsWith('map<');

// cel-js's own Duration (its package types do not export the class): durations are built
// and compared exactly as cel-js builds and compares them.
interface Duration {
  valueOf(): number;
}
const plain = new Environment().registerVariable('s', 'string');
const constantDuration = (text: string) => plain.evaluate('duration(s)', { s: text }) as Duration;
const DurationClass = constantDuration('0s').constructor as unknown as {
  fromMilliseconds(ms: number): Duration;
};

function codePoints(s: string): bigint {
  let n = 0;
  for (const _ of s) n++;
  return BigInt(n);
}

// What each CEL type is among the values facts become in cel-js (JSON objects of a card are
// Maps, numbers doubles; ints are bigints). uint, bytes and messages are left to cel-js.
const KIND_TESTS: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === 'string',
  bool: (v) => typeof v === 'boolean',
  int: (v) => typeof v === 'bigint',
  double: (v) => typeof v === 'number',
  null_type: (v) => v === null,
  list: (v) => Array.isArray(v),
  map: (v) => v instanceof Map,
};

class Compiler {
  readonly #messages: ReadonlySet<string>;
  readonly #scope: string[] = [];

  constructor(messages: ReadonlySet<string>) {
    this.#messages = messages;
  }

  compile(n: Node): Compiled {
    switch (n.op) {
      case 'value':
        return this.#value(n);
      case 'id':
        return this.#id(n.args as string);
      case '.':
        return this.#select(n);
      case '[]':
        return this.#index(n);
      case '==':
      case '!=':
        return this.#equality(n);
      case '<':
      case '<=':
      case '>':
      case '>=':
        return this.#order(n);
      case '+':
      case '-':
      case '*':
      case '/':
      case '%':
        return this.#arithmetic(n);
      case '&&':
      case '||':
        return this.#logic(n);
      case '!_': {
        const a = this.compile(n.args as Node);
        return (f) => !bool(a(f));
      }
      case '-_': {
        const arg = n.args as Node;
        const a = this.compile(arg);
        const t = typeOf(arg);
        if (t === 'int') return (f) => int(-(a(f) as bigint));
        if (t === 'double') return (f) => -(a(f) as number);
        throw new Unsupported(`-${t}`);
      }
      case '?:': {
        const [c, x, y] = (n.args as Node[]).map((a) => this.compile(a)) as [
          Compiled,
          Compiled,
          Compiled,
        ];
        return (f) => (bool(c(f)) ? x(f) : y(f));
      }
      case 'in':
        return this.#in(n);
      case 'list': {
        // A list of literals is built once (frozen: nothing in CEL changes a value).
        const literals = n.args as Node[];
        if (literals.every((a) => a.op === 'value')) {
          const fixed = Object.freeze(literals.map((a) => this.#value(a)(EMPTY)));
          return () => fixed;
        }
        const items = literals.map((a) => this.compile(a));
        return (f) => {
          const out = new Array(items.length);
          for (let i = 0; i < items.length; i++) out[i] = items[i]!(f);
          return out;
        };
      }
      case 'call':
        return this.#call(n);
      case 'rcall':
        return this.#receiverCall(n);
      default:
        throw new Unsupported(n.op);
    }
  }

  #value(n: Node): Compiled {
    const v = n.args;
    if (
      v === null ||
      typeof v === 'string' ||
      typeof v === 'boolean' ||
      typeof v === 'bigint' ||
      typeof v === 'number'
    )
      return () => v;
    throw new Unsupported('a literal of another type');
  }

  #id(name: string): Compiled {
    const slot = this.#scope.lastIndexOf(name);
    if (slot >= 0) return (f) => f.locals[slot];
    if (name === 'variables') throw new Unsupported('variables as a value');
    return (f) => {
      const v = f.ctx[name];
      return v === undefined ? fail(`no value for ${name}`) : v;
    };
  }

  #select(n: Node): Compiled {
    const [leftAst, key] = n.args as [Node, string];
    if (leftAst.op === 'id' && leftAst.args === 'variables' && !this.#scope.includes('variables'))
      return (f) => f.variable(key);
    const left = this.compile(leftAst);
    const t = typeOf(leftAst);
    if (this.#messages.has(t))
      return (f) => {
        const v = (left(f) as Record<string, unknown>)[key];
        return v === undefined ? fail(`no field ${key}`) : v;
      };
    if (isMap(t) || t === 'dyn')
      return (f) => {
        const m = left(f);
        if (!(m instanceof Map)) return fail('field of a non-Map');
        const v = m.get(key);
        return v === undefined ? fail(`no key ${key}`) : v;
      };
    throw new Unsupported(`field of ${t}`);
  }

  /** A binary node's operands: their checked types and compiled closures. */
  #operands(n: Node) {
    const [l, r] = n.args as [Node, Node];
    return { lt: typeOf(l), rt: typeOf(r), left: this.compile(l), right: this.compile(r) };
  }

  #index(n: Node): Compiled {
    const { lt, rt, left, right } = this.#operands(n);
    if (isList(lt) && rt === 'int')
      return (f) => {
        const xs = left(f);
        const i = right(f) as bigint;
        if (!Array.isArray(xs) || i < 0n || i >= BigInt(xs.length)) return fail('index');
        return xs[Number(i)];
      };
    if (isMap(lt) && rt === 'string')
      return (f) => {
        const m = left(f);
        if (!(m instanceof Map)) return fail('index of a non-Map');
        const v = m.get(right(f));
        return v === undefined ? fail('no such key') : v;
      };
    throw new Unsupported(`${lt}[${rt}]`);
  }

  #equality(n: Node): Compiled {
    const typeTest = this.#typeTest(n);
    if (typeTest) return typeTest;
    const { lt, rt, left, right } = this.#operands(n);
    const negate = n.op === '!=';
    let eq: (a: unknown, b: unknown) => boolean;
    if (lt === rt && PRIMITIVE.has(lt)) eq = (a, b) => a === b;
    else if (
      (lt === 'dyn' && (PRIMITIVE.has(rt) || rt === 'dyn')) ||
      (rt === 'dyn' && PRIMITIVE.has(lt)) ||
      (lt === 'int' && rt === 'double') ||
      (lt === 'double' && rt === 'int')
    )
      eq = equal;
    else throw new Unsupported(`${lt} ${n.op} ${rt}`);
    return negate ? (f) => !eq(left(f), right(f)) : (f) => eq(left(f), right(f));
  }

  /**
   * `type(x) == string` (either way round, or `!=`): how a rule asks for a card field of a
   * given kind rather than any value that is not empty. Types cel-js values of the facts can
   * have, told apart by their JavaScript form; other type names are left to cel-js.
   */
  #typeTest(n: Node): Compiled | undefined {
    const [l, r] = n.args as [Node, Node];
    const isTypeCall = (x: Node) =>
      x.op === 'call' &&
      (x.args as [string, Node[]])[0] === 'type' &&
      (x.args as [string, Node[]])[1].length === 1;
    const typeName = (x: Node) =>
      x.op === 'id' && typeof x.args === 'string' && !this.#scope.includes(x.args)
        ? x.args
        : undefined;
    const [call, name] = isTypeCall(l)
      ? [l, typeName(r)]
      : isTypeCall(r)
        ? [r, typeName(l)]
        : [undefined, undefined];
    if (!call || !name) return undefined;
    const test = KIND_TESTS[name];
    if (!test) throw new Unsupported(`type() == ${name}`);
    const arg = this.compile((call.args as [string, Node[]])[1][0]!);
    return n.op === '!=' ? (f) => !test(arg(f)) : (f) => test(arg(f));
  }

  #order(n: Node): Compiled {
    const operands = this.#operands(n);
    const { lt, rt } = operands;
    const numeric = (t: string) => t === 'int' || t === 'double';
    if (!((lt === rt && ORDERED.has(lt)) || (numeric(lt) && numeric(rt))))
      throw new Unsupported(`${lt} ${n.op} ${rt}`);
    // cel-js compares with the JavaScript operators (timestamps and durations by valueOf).
    const left = operands.left as (f: Frame) => number;
    const right = operands.right as (f: Frame) => number;
    switch (n.op) {
      case '<':
        return (f) => left(f) < right(f);
      case '<=':
        return (f) => left(f) <= right(f);
      case '>':
        return (f) => left(f) > right(f);
      default:
        return (f) => left(f) >= right(f);
    }
  }

  #arithmetic(n: Node): Compiled {
    const { lt, rt, left, right } = this.#operands(n);
    const sig = `${lt} ${n.op} ${rt}`;
    switch (sig) {
      case 'string + string':
        return (f) => (left(f) as string) + (right(f) as string);
      case 'double + double':
        return (f) => (left(f) as number) + (right(f) as number);
      case 'double - double':
        return (f) => (left(f) as number) - (right(f) as number);
      case 'double * double':
        return (f) => (left(f) as number) * (right(f) as number);
      case 'int + int':
        return (f) => int((left(f) as bigint) + (right(f) as bigint));
      case 'int - int':
        return (f) => int((left(f) as bigint) - (right(f) as bigint));
      case 'int * int':
        return (f) => int((left(f) as bigint) * (right(f) as bigint));
      // BigInt division truncates and the remainder takes the dividend's sign, as in cel-js; a
      // zero divisor and MIN_INT / -1 are cel-js's to answer.
      case 'int / int':
        return (f) => {
          const a = left(f) as bigint;
          const b = right(f) as bigint;
          return b === 0n || (b === -1n && a === MIN_INT) ? fail('division') : a / b;
        };
      case 'int % int':
        return (f) => {
          const b = right(f) as bigint;
          return b === 0n ? fail('modulo by zero') : (left(f) as bigint) % b;
        };
      case `${TIMESTAMP} - ${TIMESTAMP}`:
        return (f) =>
          DurationClass.fromMilliseconds(
            (left(f) as Date).getTime() - (right(f) as Date).getTime(),
          );
    }
    if (n.op === '+' && isList(lt) && isList(rt))
      return (f) => {
        const a = left(f);
        const b = right(f);
        if (!Array.isArray(a) || !Array.isArray(b)) return fail('concatenation of non-Arrays');
        return [...a, ...b];
      };
    throw new Unsupported(sig);
  }

  #logic(n: Node): Compiled {
    const [l, r] = (n.args as Node[]).map((a) => this.compile(a)) as [Compiled, Compiled];
    // Left to right, stopping early: an error on the left throws, and cel-js (which lets a
    // later `false` absorb it) decides.
    return n.op === '&&' ? (f) => bool(l(f)) && bool(r(f)) : (f) => bool(l(f)) || bool(r(f));
  }

  #in(n: Node): Compiled {
    const { lt, rt, left, right } = this.#operands(n);
    if (isList(rt) && (PRIMITIVE.has(lt) || lt === 'dyn')) {
      // Elements of the element's own scalar type compare with ===; cel-js does the same.
      const eq = rt === `list<${lt}>` && lt !== 'dyn' ? (a: unknown, b: unknown) => a === b : equal;
      return (f) => {
        const x = left(f);
        const xs = right(f);
        if (!Array.isArray(xs)) return fail('membership in a non-Array');
        for (const y of xs) if (eq(x, y)) return true;
        return false;
      };
    }
    if (isMap(rt) && rt.startsWith('map<string,') && (lt === 'string' || lt === 'dyn'))
      return (f) => {
        const k = left(f);
        const m = right(f);
        if (!(m instanceof Map) || typeof k !== 'string') return fail('key of a non-Map');
        return m.get(k) !== undefined;
      };
    throw new Unsupported(`${lt} in ${rt}`);
  }

  #call(n: Node): Compiled {
    const [name, args] = n.args as [string, Node[]];
    if (name === 'has' && args.length === 1 && args[0]!.op === '.') {
      const [objAst, key] = args[0]!.args as [Node, string];
      const t = typeOf(objAst);
      const obj = this.compile(objAst);
      // Own properties only: cel-js answers false for a name that is not a field, such as
      // `toString`, which every object inherits.
      if (this.#messages.has(t))
        return (f) => {
          const o = obj(f) as Record<string, unknown>;
          return Object.hasOwn(o, key) && o[key] !== undefined;
        };
      if (isMap(t))
        return (f) => {
          const m = obj(f);
          return m instanceof Map ? m.get(key) !== undefined : fail('has() of a non-Map');
        };
      throw new Unsupported(`has() of a field of ${t}`);
    }
    if (name === 'duration' && args.length === 1 && args[0]!.op === 'value') {
      const text = args[0]!.args;
      if (typeof text !== 'string') throw new Unsupported('duration of a non-string');
      let d: Duration;
      try {
        d = constantDuration(text);
      } catch {
        // Not a duration: cel-js reports the error when a rule reads it.
        return () => fail(`invalid duration ${JSON.stringify(text)}`);
      }
      return () => d;
    }
    if (args.length !== 1) throw new Unsupported(`${name}() with ${args.length} arguments`);
    const t = typeOf(args[0]!);
    const a = this.compile(args[0]!);
    if (name === 'size') return this.#size(t, a);
    if (name === 'string') {
      if (t === 'string') return a;
      if (t === 'int' || t === 'bool') return (f) => `${a(f)}`;
    }
    throw new Unsupported(`${name}(${t})`);
  }

  #size(t: string, a: Compiled): Compiled {
    if (t === 'string') return (f) => codePoints(a(f) as string);
    if (isList(t))
      return (f) => {
        const xs = a(f);
        return Array.isArray(xs) ? BigInt(xs.length) : fail('size of a non-Array');
      };
    if (isMap(t))
      return (f) => {
        const m = a(f);
        return m instanceof Map ? BigInt(m.size) : fail('size of a non-Map');
      };
    throw new Unsupported(`size(${t})`);
  }

  #receiverCall(n: Node): Compiled {
    const [name, receiverAst, args] = n.args as [string, Node, Node[]];
    const rt = typeOf(receiverAst);
    switch (name) {
      case 'filter':
      case 'map':
      case 'exists':
      case 'all':
      case 'exists_one':
        if (!isList(rt)) throw new Unsupported(`${name} over ${rt}`);
        return this.#comprehension(name, this.compile(receiverAst), args);
    }
    const receiver = this.compile(receiverAst);
    const params = args.map((a) => this.compile(a));
    const argTypes = args.map(typeOf);
    const sig = `${rt}.${name}(${argTypes.join(', ')})`;
    switch (sig) {
      case 'list<string>.join()':
      case 'list<string>.join(string)': {
        const sep = params[0];
        return (f) => {
          const xs = receiver(f);
          if (!Array.isArray(xs)) return fail('join of a non-Array');
          for (const x of xs) if (typeof x !== 'string') return fail('join of non-strings');
          return xs.join(sep ? (sep(f) as string) : '');
        };
      }
      case 'string.startsWith(string)':
        return (f) => (receiver(f) as string).startsWith(params[0]!(f) as string);
      case 'string.endsWith(string)':
        return (f) => (receiver(f) as string).endsWith(params[0]!(f) as string);
      case 'string.contains(string)':
        return (f) => (receiver(f) as string).includes(params[0]!(f) as string);
      case `string.${RE2_MATCHES}(string)`:
      case `dyn.${RE2_MATCHES}(string)`:
        return (f) => {
          const text = receiver(f);
          return typeof text === 'string'
            ? re2Matches(text, params[0]!(f) as string)
            : fail('matches on a value that is not a string');
        };
    }
    if (name === 'size' && args.length === 0) return this.#size(rt, receiver);
    throw new Unsupported(sig);
  }

  #comprehension(name: string, receiver: Compiled, args: Node[]): Compiled {
    const [iter, ...bodies] = args;
    if (iter?.op !== 'id' || typeof iter.args !== 'string')
      throw new Unsupported('a comprehension without a variable');
    if (bodies.length !== 1 && !(name === 'map' && bodies.length === 2))
      throw new Unsupported(`${name} with ${bodies.length + 1} arguments`);
    this.#scope.push(iter.args);
    const slot = this.#scope.length - 1;
    let compiled: Compiled[];
    try {
      compiled = bodies.map((b) => this.compile(b));
    } finally {
      this.#scope.pop();
    }
    const items = (f: Frame): unknown[] => {
      const xs = receiver(f);
      return Array.isArray(xs) ? xs : fail('comprehension over a non-Array');
    };
    const [body, transform] = compiled as [Compiled, Compiled | undefined];
    switch (name) {
      case 'filter':
        return (f) => {
          const out: unknown[] = [];
          for (const x of items(f)) {
            f.locals[slot] = x;
            if (bool(body(f))) out.push(x);
          }
          return out;
        };
      case 'map':
        if (transform)
          return (f) => {
            const out: unknown[] = [];
            for (const x of items(f)) {
              f.locals[slot] = x;
              if (bool(body(f))) out.push(transform(f));
            }
            return out;
          };
        return (f) => {
          const xs = items(f);
          const out = new Array(xs.length);
          for (let i = 0; i < xs.length; i++) {
            f.locals[slot] = xs[i];
            out[i] = body(f);
          }
          return out;
        };
      case 'exists':
        return (f) => {
          for (const x of items(f)) {
            f.locals[slot] = x;
            if (bool(body(f))) return true;
          }
          return false;
        };
      case 'all':
        return (f) => {
          for (const x of items(f)) {
            f.locals[slot] = x;
            if (!bool(body(f))) return false;
          }
          return true;
        };
      default:
        return (f) => {
          let n = 0;
          for (const x of items(f)) {
            f.locals[slot] = x;
            if (bool(body(f))) n++;
          }
          return n === 1;
        };
    }
  }
}

/**
 * Compiles a type-checked cel-js program (one `Environment.parse` result after `check()`), or
 * returns null when it uses anything this compiler leaves to cel-js. `messages` names the
 * message types whose fields are plain properties of their instances.
 */
export function compileCel(program: unknown, messages: ReadonlySet<string>): Compiled | null {
  const ast = (program as { ast?: Node }).ast;
  if (!ast?.checkedType) return null;
  try {
    return new Compiler(messages).compile(ast);
  } catch {
    // Unsupported, or anything else the compiler did not expect: cel-js evaluates it.
    return null;
  }
}
