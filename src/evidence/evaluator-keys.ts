import { createPublicKey, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { keyidOf } from './dsse.js';

/** A public key an external evaluator signs its results with, registered by the operator. */
export interface EvaluatorKey {
  /** The evaluator's name: the key file's name without `.pem`. */
  name: string;
  keyid: string;
  key: KeyObject;
  /** The public key as SPKI PEM (what the audit log records with each statement it signed). */
  pem: string;
}

/**
 * Reads `<name>.pem` public keys from a folder (MODELGATE_EVALUATOR_KEYS). A file holding a
 * private key is refused: the folder is for what verifies, never for what signs.
 */
export function loadEvaluatorKeys(folder: string | undefined): EvaluatorKey[] {
  if (!folder) return [];
  let files: string[];
  try {
    files = readdirSync(folder).filter((f) => f.endsWith('.pem'));
  } catch (e) {
    throw new Error(`evaluator keys ${folder}: ${(e as Error).message}`);
  }
  return files.sort().map((f) => {
    const text = readFileSync(join(folder, f), 'utf8');
    if (/PRIVATE KEY/.test(text))
      throw new Error(`evaluator key ${f} holds a private key; put only the public key there`);
    let key: KeyObject;
    try {
      key = createPublicKey(text);
    } catch (e) {
      throw new Error(`evaluator key ${f} is not a PEM public key: ${(e as Error).message}`);
    }
    return {
      name: basename(f, '.pem'),
      keyid: keyidOf(key),
      key,
      pem: key.export({ type: 'spki', format: 'pem' }).toString(),
    };
  });
}
