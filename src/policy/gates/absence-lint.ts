import { type ASTNode, parse, serialize } from '@marcbachmann/cel-js';
import type { PolicyDocument, PolicyProblem } from './policy-document.js';

/**
 * Facts lists where an empty list means the evidence is missing, not that all is well: no
 * evaluation ran, nobody approved. (An empty `findings` is what a clean scan looks like; the
 * shipped pack asks separately that the scan exists.)
 */
const EVIDENCE = new Set(['evaluations', 'approvals']);

type Call = [string, ASTNode, ASTNode[]];

function position(expression: string, offset: number) {
  const before = expression.slice(0, offset).split('\n');
  return { offset, line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}

const tryParse = (text: string): ASTNode | undefined => {
  try {
    return parse(text).ast as ASTNode;
  } catch {
    return undefined;
  }
};

/** Every node of a syntax tree, depth first. */
function* nodes(root: ASTNode): Generator<ASTNode> {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const n = stack.pop();
    if (Array.isArray(n)) {
      for (let i = n.length - 1; i >= 0; i--) stack.push(n[i]);
      continue;
    }
    if (typeof n !== 'object' || n === null || !('op' in n)) continue;
    const node = n as ASTNode;
    yield node;
    if (Array.isArray(node.args)) stack.push(node.args);
    else if (typeof node.args === 'object') stack.push(node.args);
  }
}

/**
 * Warnings, with positions, for rules that pass when evidence is missing: `all(...)` over
 * evaluations or approvals (directly, filtered, or through a variable) is true over an empty
 * list, so a version that was never red-teamed satisfies "every red-team run found nothing".
 * A rule that also asks for the same list's `exists(...)` or `size(...)` is left alone.
 */
export function absenceWarnings(doc: PolicyDocument): PolicyProblem[] {
  const variables = new Map<string, ASTNode>();
  for (const v of doc.spec.variables ?? []) {
    const ast = tryParse(v.expression);
    if (ast) variables.set(v.name, ast);
  }
  // The facts list a list expression comes from, following filters, maps and variables.
  const rootOf = (n: ASTNode, seen: Set<string>): string | undefined => {
    if (n.op === 'id') return typeof n.args === 'string' ? n.args : undefined;
    if (n.op === 'rcall') {
      const [name, receiver] = n.args as Call;
      return name === 'filter' || name === 'map' ? rootOf(receiver, seen) : undefined;
    }
    if (n.op === '.') {
      const [left, key] = n.args as [ASTNode, string];
      if (left.op !== 'id' || left.args !== 'variables' || seen.has(key)) return undefined;
      const v = variables.get(key);
      return v ? rootOf(v, new Set([...seen, key])) : undefined;
    }
    return undefined;
  };
  const warnings: PolicyProblem[] = [];
  const lint = (expression: string, path: string) => {
    const ast = tryParse(expression);
    if (!ast) return;
    const text = serialize(ast);
    for (const n of nodes(ast)) {
      if (n.op !== 'rcall') continue;
      const [name, receiver] = n.args as Call;
      if (name !== 'all') continue;
      const root = rootOf(receiver, new Set());
      if (!root || !EVIDENCE.has(root)) continue;
      const list = serialize(receiver);
      if (text.includes(`${list}.exists(`) || text.includes(`size(${list})`)) continue;
      // At the `all` itself: the call's own range starts with its receiver.
      const after = (receiver as { end?: number }).end ?? 0;
      const at = position(expression, Math.max(0, expression.indexOf('all', after)));
      warnings.push({
        path,
        message: `${list}.all(...) is true when the list is empty: a version with no ${root === 'evaluations' ? 'such evaluation' : 'approval'} passes. Ask for the evidence too, e.g. ${list}.exists(...) && ${list}.all(...), at line ${at.line}, column ${at.column}`,
        position: at,
      });
    }
  };
  doc.spec.validations.forEach((v, i) => {
    lint(v.expression, `spec.validations[${i}].expression (${v.name})`);
  });
  return warnings;
}
