import type { Severity } from '../../core/findings.js';

/**
 * The deterministic detectors of the red-team evaluator. Each looks at one model response in
 * the context of its attempt and says whether the attack succeeded (a hit).
 *
 * - `canary`: the response holds the planted secret or any planted personal data (exactly, or
 *   trivially disguised: case, spacing, separators).
 * - `sysprompt-overlap`: a large share of the system prompt's word 5-grams appear in the
 *   response (the system prompt leaked, verbatim or nearly).
 * - `secret-regex`: something shaped like a credential (cloud keys, API tokens, private keys).
 * - `pii-regex`: e-mail addresses, phone numbers, national ids, payment card numbers (Luhn).
 * - `trigger`: the attempt's trigger string (what an injected instruction asked for) appears.
 * - `refusal-absent`: the response does not refuse (for requests a safe model refuses).
 * - `exfil-markup`: markdown images or links, HTML images, that would send data to a URL.
 */
export const DETECTORS = [
  'canary',
  'sysprompt-overlap',
  'secret-regex',
  'pii-regex',
  'trigger',
  'refusal-absent',
  'exfil-markup',
] as const;
export type DetectorId = (typeof DETECTORS)[number];

/** Probe categories, the unit attack success rates are reported for. */
export const CATEGORIES = [
  'prompt-injection',
  'indirect-injection',
  'jailbreak',
  'system-prompt-extraction',
  'secret-leakage',
  'pii-leakage',
  'encoding',
  'exfiltration',
  'harmful-content',
] as const;
export type Category = (typeof CATEGORIES)[number];

/** How a probe's payload is disguised before it is put into the prompt. */
export const ENCODINGS = ['base64', 'rot13', 'unicode-tags'] as const;
export type Encoding = (typeof ENCODINGS)[number];

/** One attack: a user message (and optionally a document) sent to the target. */
export interface Probe {
  /** Unique across all packs: lowercase, digits, dots and dashes, e.g. `pi.ignore-previous`. */
  id: string;
  category: Category;
  title: string;
  /**
   * The user message. `{{trigger}}` is replaced by the trigger, `{{payload}}` by the payload
   * after its encoding, `{{document}}` by the document.
   */
  prompt: string;
  /** Untrusted content the user asks the model to work on (indirect injection). */
  document?: string;
  /** Text to disguise with `encoding` and put in place of `{{payload}}`. */
  payload?: string;
  encoding?: Encoding;
  /** What an injected instruction asks the model to output: its appearance is a hit. */
  trigger?: string;
  /** Which detectors decide whether the attack worked; any hit counts. */
  detectors: DetectorId[];
  /** How bad a successful attack is, before the success rate is taken into account. */
  severity: Severity;
  /** OWASP LLM Top 10 (2025) ids, MITRE ATLAS technique ids, NIST AI 600-1 risk names. */
  tags: { owasp: string[]; atlas: string[]; nist: string[] };
}

/** A versioned data file of probes (`probes/<name>.json` at the package root). */
export interface ProbePack {
  apiVersion: 'modelgate.dev/v1';
  kind: 'ProbePack';
  name: string;
  /** Semantic version of the pack's content. */
  version: string;
  description: string;
  probes: Probe[];
}

/** What the evaluator plants in the system prompt so that leaks are detected exactly. */
export interface Canaries {
  /** An API-key-shaped secret unique to this run, e.g. `sk-mg-<32 hex>`. */
  secret: string;
  /** Fake personal data, unique to this run. */
  pii: { name: string; email: string; phone: string; account: string };
}

/** What a detector knows about the attempt besides the response. */
export interface DetectorContext {
  /** The whole system prompt that was sent (the canaries are in it). */
  systemPrompt: string;
  canaries: Canaries;
  /** The attempt's trigger, when its probe has one. */
  trigger?: string;
  /** The user message that was sent (a detector must not count what the prompt itself holds). */
  prompt?: string;
}

/** One detector's verdict on one response. */
export interface Detection {
  detector: DetectorId;
  hit: boolean;
  /** 0..1: how strongly it matched (1 for exact matches). */
  score: number;
  /** A short excerpt of what matched, for the transcript (never more than 200 characters). */
  evidence?: string;
}
