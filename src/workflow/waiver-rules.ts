/**
 * What a waiver may name. A waiver is an accepted risk about something real: a finding rule a
 * finding carries (or one the built-in evaluators report), or a waivable rule of a published
 * gate policy. Anything else would sit on record looking as if it meant something.
 */

/** Rule-id families of the built-in evaluators (the scanner's formats and the red team). */
export const BUILTIN_RULE_FAMILIES = [
  'archive',
  'gguf',
  'hdf5',
  'joblib',
  'keras',
  'numpy',
  'onnx',
  'pickle',
  'redteam',
  'safetensors',
  'torch',
] as const;

// family.rule, optionally /detail (a pickle global, a tensor name): printable ASCII, no spaces.
const BUILTIN_RULE = new RegExp(
  `^(${BUILTIN_RULE_FAMILIES.join('|')})\\.[a-z0-9][a-z0-9-]*(\\.[a-z0-9][a-z0-9-]*)*(/[\\x21-\\x7e]{1,200})?$`,
);
const WILDCARD = /[*?%[\]]/;

/** Why a finding rule cannot be waived as written, or undefined when its form is acceptable. */
export function findingRuleProblem(rule: string): string | undefined {
  if (rule.trim() === '') return 'a finding rule cannot be empty';
  if (WILDCARD.test(rule))
    return `finding rule ${JSON.stringify(rule)} contains a wildcard: a waiver names one rule exactly (see modelgate version show for the rule ids found)`;
  if (/\s/.test(rule)) return `finding rule ${JSON.stringify(rule)} contains white space`;
  return undefined;
}

/** Whether a rule id has the form of a rule a built-in evaluator reports. */
export function isBuiltinFindingRule(rule: string): boolean {
  return BUILTIN_RULE.test(rule);
}
