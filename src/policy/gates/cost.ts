import { type ASTNode, parse } from '@marcbachmann/cel-js';
import type { Facts } from './facts-schema.js';
import { type PolicyDocument, type PolicyProblem, refuse } from './policy-document.js';

/**
 * The sizes policies are costed for: the most items a facts list may hold and the most JSON
 * values a card may hold. A snapshot over these bounds is not evaluated (every rule fails and
 * the gate denies), so the static bound below holds for every evaluation that runs.
 */
export const FACT_BOUNDS = {
  evaluations: 1_000,
  findings: 10_000,
  lineage: 1_000,
  approvals: 100,
  waivers: 1_000,
  /** Tags, roles and teams lists. */
  tags: 100,
  /** Card fields, and metrics of one evaluation. */
  entries: 1_000,
  /** JSON values inside a card (a list in a card is at most this long). */
  cardValues: 100_000,
  /** Characters of any text a rule reads (what a `matches` scans). */
  text: 65_536,
} as const;

/** The most evaluation steps a policy may cost on facts within FACT_BOUNDS. */
export const MAX_POLICY_COST = 10_000_000;

/** An upper bound on a value: its length if a list (or map, or text), and its items' bound. */
interface Bound {
  size: number;
  elem?: Bound;
}
const SCALAR: Bound = { size: 1 };
const list = (size: number, elem: Bound = SCALAR): Bound => ({ size, elem });
const DYN: Bound = { size: FACT_BOUNDS.cardValues, elem: undefined };

// The facts lists and the list fields of their items.
const ROOTS: Record<string, Bound> = {
  evaluations: list(FACT_BOUNDS.evaluations),
  findings: list(FACT_BOUNDS.findings),
  lineage: list(FACT_BOUNDS.lineage),
  approvals: list(FACT_BOUNDS.approvals),
  waivers: list(FACT_BOUNDS.waivers),
};
const FIELDS: Record<string, Bound> = {
  tags: list(FACT_BOUNDS.tags),
  roles: list(FACT_BOUNDS.tags),
  teams: list(FACT_BOUNDS.tags),
  card: list(FACT_BOUNDS.entries, DYN),
  metrics: list(FACT_BOUNDS.entries),
};

const COMPREHENSIONS = new Set(['filter', 'map', 'all', 'exists', 'exists_one']);

type Cost = { cost: number; bound: Bound };

const max = (a: Bound | undefined, b: Bound | undefined): Bound => {
  if (!a) return b ?? SCALAR;
  if (!b) return a;
  const elem = a.elem || b.elem ? max(a.elem, b.elem) : undefined;
  return { size: Math.max(a.size, b.size), ...(elem && { elem }) };
};

class Estimator {
  readonly variables = new Map<string, Bound>();
  private readonly scope: Map<string, Bound>[] = [];

  cost(n: ASTNode): Cost {
    const args = n.args as unknown;
    switch (n.op) {
      case 'value':
        return { cost: 1, bound: typeof args === 'string' ? { size: args.length } : SCALAR };
      case 'id': {
        const name = args as string;
        for (let i = this.scope.length - 1; i >= 0; i--) {
          const b = this.scope[i]?.get(name);
          if (b) return { cost: 1, bound: b };
        }
        return { cost: 1, bound: ROOTS[name] ?? SCALAR };
      }
      case '.':
      case '.?': {
        const [left, key] = args as [ASTNode, string];
        if (left.op === 'id' && left.args === 'variables')
          return { cost: 1, bound: this.variables.get(key) ?? DYN };
        const l = this.cost(left);
        // A field of a card value (dyn) may be anything in the card.
        const bound = l.bound === DYN || l.bound.elem === DYN ? DYN : (FIELDS[key] ?? SCALAR);
        return { cost: l.cost + 1, bound };
      }
      case '[]':
      case '[?]': {
        const [left, index] = args as [ASTNode, ASTNode];
        const l = this.cost(left);
        const i = this.cost(index);
        return { cost: l.cost + i.cost + 1, bound: l.bound.elem ?? DYN };
      }
      case 'list': {
        const items = (args as ASTNode[]).map((a) => this.cost(a));
        return {
          cost: items.reduce((s, x) => s + x.cost, 1) + items.length,
          bound: list(
            items.length,
            items.reduce<Bound | undefined>((m, x) => max(m, x.bound), undefined),
          ),
        };
      }
      case 'map': {
        const entries = (args as [ASTNode, ASTNode][]).map(([k, v]) => [
          this.cost(k),
          this.cost(v),
        ]);
        let cost = 1;
        let elem: Bound | undefined;
        for (const [k, v] of entries) {
          cost += (k?.cost ?? 0) + (v?.cost ?? 0) + 1;
          elem = max(elem, v?.bound);
        }
        return { cost, bound: list(entries.length, elem) };
      }
      case '+': {
        const [a, b] = (args as ASTNode[]).map((x) => this.cost(x)) as [Cost, Cost];
        // Lists and texts are copied: the result is as long as both.
        const size = a.bound.size + b.bound.size;
        const elem = a.bound.elem || b.bound.elem ? max(a.bound.elem, b.bound.elem) : undefined;
        return { cost: a.cost + b.cost + size, bound: { size, ...(elem && { elem }) } };
      }
      case 'in': {
        const [a, b] = (args as ASTNode[]).map((x) => this.cost(x)) as [Cost, Cost];
        return { cost: a.cost + b.cost + b.bound.size, bound: SCALAR };
      }
      case 'rcall': {
        const [name, receiver, params] = args as [string, ASTNode, ASTNode[]];
        if (COMPREHENSIONS.has(name)) return this.comprehension(name, receiver, params);
        const r = this.cost(receiver);
        const ps = params.map((p) => this.cost(p));
        let cost = ps.reduce((s, x) => s + x.cost, r.cost + 1);
        let bound: Bound = SCALAR;
        if (name === 'join') {
          cost += r.bound.size;
          bound = { size: FACT_BOUNDS.text };
        } else if (name === 'matches' || name === 'matches_re2' || name === 'contains')
          cost += Math.min(r.bound.size, FACT_BOUNDS.text) * Math.max(1, ps[0]?.bound.size ?? 1);
        else if (name === 'startsWith' || name === 'endsWith')
          cost += Math.max(1, ps[0]?.bound.size ?? 1);
        return { cost, bound };
      }
      case 'call': {
        const [name, params] = args as [string, ASTNode[]];
        const ps = params.map((p) => this.cost(p));
        const cost = ps.reduce((s, x) => s + x.cost, 1);
        // Conversions keep the size of what they convert (string(x), dyn(x)).
        const bound = name === 'size' || name === 'has' ? SCALAR : (ps[0]?.bound ?? SCALAR);
        return { cost, bound };
      }
      default: {
        // Operators and the conditional: the sum of their operands; a conditional is as
        // large as its larger branch.
        const parts = (Array.isArray(args) ? args : [args])
          .filter((a): a is ASTNode => typeof a === 'object' && a !== null && 'op' in a)
          .map((a) => this.cost(a));
        const cost = parts.reduce((s, x) => s + x.cost, 1);
        const bound =
          n.op === '?:'
            ? max(parts[1]?.bound, parts[2]?.bound)
            : parts.reduce<Bound>((m, x) => (x.bound.size > 1 ? max(m, x.bound) : m), SCALAR);
        return { cost, bound };
      }
    }
  }

  private comprehension(name: string, receiver: ASTNode, params: ASTNode[]): Cost {
    const r = this.cost(receiver);
    const [iter, ...bodies] = params;
    const n = r.bound.size;
    this.scope.push(
      new Map([[iter?.op === 'id' ? (iter.args as string) : '', r.bound.elem ?? DYN]]),
    );
    let body: Cost[];
    try {
      body = bodies.map((b) => this.cost(b));
    } finally {
      this.scope.pop();
    }
    const per = body.reduce((s, x) => s + x.cost, 1);
    const result =
      name === 'filter'
        ? list(n, r.bound.elem)
        : name === 'map'
          ? list(n, body.at(-1)?.bound)
          : SCALAR;
    return { cost: r.cost + n * per, bound: result };
  }
}

/**
 * The policy's cost bound on facts within FACT_BOUNDS, and a problem for each part that makes
 * it exceed MAX_POLICY_COST (nested comprehensions multiply; a list that is copied or grown in
 * a variable counts its size). Variables are costed once, as they are evaluated once.
 */
export function policyCost(doc: PolicyDocument): { cost: number; problems: PolicyProblem[] } {
  const est = new Estimator();
  const problems: PolicyProblem[] = [];
  let total = 0;
  const add = (expression: string, path: string): Bound | undefined => {
    let ast: ASTNode;
    try {
      ast = parse(expression).ast as ASTNode;
    } catch {
      return undefined; // the type checker reports it
    }
    const c = est.cost(ast);
    total += c.cost;
    if (!(c.cost <= MAX_POLICY_COST) || !(c.bound.size <= MAX_POLICY_COST))
      problems.push({
        path,
        message: `may take ${c.cost.toExponential(1)} steps${c.bound.size > MAX_POLICY_COST ? ` and build a value of ${c.bound.size.toExponential(1)} items` : ''} on facts within the evaluation bounds (the limit is ${MAX_POLICY_COST.toExponential(0)}): nested comprehensions multiply, and a list copied into a variable counts its length`,
      });
    return c.bound;
  };
  (doc.spec.variables ?? []).forEach((v, i) => {
    est.variables.set(v.name, add(v.expression, `spec.variables[${i}].expression`) ?? DYN);
  });
  doc.spec.validations.forEach((v, i) => {
    add(v.expression, `spec.validations[${i}].expression (${v.name})`);
    if (v.messageExpression !== undefined)
      add(v.messageExpression, `spec.validations[${i}].messageExpression (${v.name})`);
  });
  if (problems.length === 0 && !(total <= MAX_POLICY_COST))
    problems.push({
      path: 'spec',
      message: `the policy may take ${total.toExponential(1)} steps in all on facts within the evaluation bounds (the limit is ${MAX_POLICY_COST.toExponential(0)})`,
    });
  return { cost: total, problems };
}

/** JSON values in a card value, counted up to `limit` (then it stops). */
function countValues(v: unknown, limit: number): number {
  let n = 0;
  const stack = [v];
  while (stack.length > 0 && n <= limit) {
    const x = stack.pop();
    n++;
    if (Array.isArray(x)) stack.push(...x);
    else if (typeof x === 'object' && x !== null) stack.push(...Object.values(x));
    else if (typeof x === 'string' && x.length > FACT_BOUNDS.text) n = limit + 1;
  }
  return n;
}

/**
 * Why a facts snapshot is outside FACT_BOUNDS (then no policy is evaluated on it and the gate
 * denies), or undefined when it is within them.
 */
export function outsideBounds(f: Facts): string | undefined {
  const over = (what: string, n: number, limit: number) =>
    n > limit ? `${what}: ${n} > ${limit}` : undefined;
  return (
    over('evaluations', f.evaluations.length, FACT_BOUNDS.evaluations) ??
    over('findings', f.findings.length, FACT_BOUNDS.findings) ??
    over('lineage', f.lineage.length, FACT_BOUNDS.lineage) ??
    over('approvals', f.approvals.length, FACT_BOUNDS.approvals) ??
    over('waivers', (f.waivers ?? []).length, FACT_BOUNDS.waivers) ??
    over('card fields', Object.keys(f.version.card ?? {}).length, FACT_BOUNDS.entries) ??
    over(
      'values in the card',
      countValues(f.version.card ?? {}, FACT_BOUNDS.cardValues),
      FACT_BOUNDS.cardValues,
    )
  );
}

/**
 * Refuses (GATE_POLICY_INVALID, naming each costly expression) a policy that could exceed
 * MAX_POLICY_COST on facts within FACT_BOUNDS: checked when a policy is published or checked,
 * so that no published rule can freeze the server or exhaust its memory.
 */
export function refuseCostly(doc: PolicyDocument): number {
  const { cost, problems } = policyCost(doc);
  if (problems.length > 0) refuse(problems);
  return cost;
}
