import type { FormatIssue } from './format-issue.js';
import { classifyGlobal } from './pickle-policy.js';

/**
 * Keras model configurations (the JSON in an HDF5 file's `model_config` attribute, a `.keras`
 * archive's `config.json`, or a SavedModel's `keras_metadata.pb`). Loading one can run code in
 * three ways, and `safe_mode` has been bypassed for each: Lambda layers carrying marshalled
 * bytecode, references to arbitrary Python modules and functions, and Keras' own helpers that
 * fetch files or switch safe mode off.
 */

/** Bytes found inside a config that are themselves a model file (a pickled torch module). */
export interface EmbeddedPayload {
  bytes: Buffer;
  where: string;
}

export interface KerasCheck {
  issues: FormatIssue[];
  embedded: EmbeddedPayload[];
}

/** Largest config the scanner parses. Real configs are kilobytes to a few megabytes. */
export const MAX_KERAS_CONFIG = 64 * 1024 * 1024;
const MAX_NODES = 1_000_000;

/** Modules whose classes Keras itself ships. */
const KERAS_MODULES = /^(keras|tf_keras|tensorflow|keras_nlp|keras_hub|keras_cv|keras_rs)(\.|$)/;

/** Keras helpers that turn a config into file access or switch the safeguards off. */
const KERAS_HAZARDS: Record<string, string[]> = {
  get_file: ['CVE-2025-8747'],
  enable_unsafe_deserialization: ['CVE-2025-9906'],
  load_model: ['CVE-2025-9906'],
  load_weights: [],
  TorchModuleWrapper: ['CVE-2025-49655'],
};

const LAMBDA_REFS = ['CVE-2024-3660', 'CVE-2025-9905', 'CWE-94', 'AML.T0011.000'];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const isObject = (v: Json | undefined): v is { [k: string]: Json } =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks one Keras config given as JSON text; `source` names where it came from. */
export function checkKerasConfig(json: string, source: string): KerasCheck {
  const issues: FormatIssue[] = [];
  const embedded: EmbeddedPayload[] = [];
  if (json.length > MAX_KERAS_CONFIG) {
    issues.push({
      ruleId: 'keras.limit',
      severity: 'medium',
      title: `Keras config in ${source} is over ${MAX_KERAS_CONFIG} bytes: not checked`,
      detail: String(json.length),
    });
    return { issues, embedded };
  }
  let root: Json;
  try {
    root = JSON.parse(json) as Json;
  } catch (e) {
    issues.push({
      ruleId: 'keras.unparseable-config',
      severity: 'medium',
      title: `Keras config in ${source} is not valid JSON`,
      detail: (e as Error).message,
    });
    return { issues, embedded };
  }
  const seen = new Set<string>();
  const add = (issue: FormatIssue, subject: string) => {
    const key = `${issue.ruleId}|${subject}`;
    if (seen.has(key)) return;
    seen.add(key);
    issues.push(issue);
  };

  // Iterative walk: a config nested a million levels deep must not overflow the stack.
  const stack: { v: Json; path: string }[] = [{ v: root, path: '$' }];
  let visited = 0;
  while (stack.length > 0) {
    const { v, path } = stack.pop() as { v: Json; path: string };
    if (++visited > MAX_NODES) {
      add(
        {
          ruleId: 'keras.limit',
          severity: 'medium',
          title: `Keras config in ${source} has more than ${MAX_NODES} values: the rest was not checked`,
          detail: path,
        },
        'nodes',
      );
      break;
    }
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        stack.push({ v: x, path: `${path}[${i}]` });
      });
      continue;
    }
    if (!isObject(v)) continue;
    for (const [k, x] of Object.entries(v)) stack.push({ v: x, path: `${path}.${k}` });
    const className = typeof v.class_name === 'string' ? v.class_name : undefined;
    const config = v.config;
    const layerName =
      isObject(config) && typeof config.name === 'string' ? config.name : (className ?? path);

    if (className === 'Lambda' || v.registered_name === 'Lambda') {
      const fn = isObject(config) ? config.function : undefined;
      const hasCode =
        (Array.isArray(fn) && typeof fn[0] === 'string') ||
        (isObject(fn) && fn.class_name === '__lambda__') ||
        (isObject(config) && config.function_type === 'lambda');
      add(
        hasCode
          ? {
              ruleId: 'keras.lambda/bytecode',
              severity: 'high',
              title: `Lambda layer ${layerName} carries Python bytecode that runs when the model loads`,
              detail: `${source} ${path}`,
              references: LAMBDA_REFS,
            }
          : {
              ruleId: 'keras.lambda',
              severity: 'medium',
              title: `Lambda layer ${layerName} calls a Python function the loader must supply`,
              detail: `${source} ${path}`,
              references: LAMBDA_REFS,
            },
        path,
      );
      continue;
    }

    if (className === 'TorchModuleWrapper') {
      add(
        {
          ruleId: 'keras.torch-module-wrapper',
          severity: 'high',
          title: `Layer ${layerName} wraps a pickled PyTorch module, unpickled when the model loads`,
          detail: `${source} ${path}`,
          references: ['CVE-2025-49655', 'CWE-502'],
        },
        path,
      );
      const payload = isObject(config) ? config.module : undefined;
      if (typeof payload === 'string' && payload.length > 16) {
        const bytes = Buffer.from(payload, 'base64');
        if (bytes.length > 0) embedded.push({ bytes, where: `${path}.config.module` });
      }
      continue;
    }

    const module = typeof v.module === 'string' ? v.module : undefined;
    if (module === undefined || className === undefined) continue;
    // Keras 3 serialises a plain function as {module, class_name: "function", config: name}.
    const name = className === 'function' && typeof config === 'string' ? config : className;
    const target = `${module}.${name}`;
    if (KERAS_MODULES.test(module)) {
      const hazard = KERAS_HAZARDS[name];
      if (hazard)
        add(
          {
            ruleId: 'keras.unsafe-reference',
            severity: 'high',
            title: `Config calls ${target}, which loading turns into file access or switches safe mode off`,
            detail: `${source} ${path}`,
            references: [...hazard, 'CWE-94'],
          },
          target,
        );
      continue;
    }
    // Not "called": a custom layer class is referenced by name, which is what custom objects
    // are; only what the pickle policy calls dangerous or networked goes above medium.
    const verdict = classifyGlobal(module, name, false);
    if (verdict.severity === 'safe') continue;
    add(
      verdict.severity === 'critical' || verdict.severity === 'high'
        ? {
            ruleId: 'keras.unsafe-reference',
            severity: verdict.severity,
            title: `Config imports ${target}: ${verdict.reason}`,
            detail: `${source} ${path}`,
            references: ['CVE-2025-1550', 'CWE-94', 'AML.T0011.000'],
          }
        : {
            ruleId: 'keras.custom-object',
            severity: 'medium',
            title: `Config needs custom code from outside Keras: ${target}`,
            detail: `${source} ${path}`,
          },
      target,
    );
  }
  return { issues, embedded };
}
