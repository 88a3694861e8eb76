import { decodeBase64 } from './base64.js';
import { HASH_SIZE } from './merkle.js';

/** A log's statement of its origin, size and root: the body of a C2SP tlog-checkpoint note. */
export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: Buffer;
  /** Extra lines after the root; allowed by the spec but not recommended, since monitors cannot audit them. */
  readonly extensions?: readonly string[];
}

/** Error thrown for a checkpoint body that breaks the tlog-checkpoint format. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

// Control characters (other than the line separator, which splitting has removed) and
// unpaired surrogates cannot appear in a signed note.
const BAD_CHARS =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  /[\u0000-\u001f]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const DECIMAL = /^(?:0|[1-9][0-9]*)$/;

function checkLine(line: string, what: string): void {
  if (line === '') throw new CheckpointError(`checkpoint ${what} is empty`);
  if (BAD_CHARS.test(line)) throw new CheckpointError(`checkpoint ${what} has a control character`);
}

/** Checkpoint note text: origin, decimal size and base64 root, one per line, then any extension lines. */
export function formatCheckpoint(checkpoint: Checkpoint): string {
  const { origin, size, root, extensions = [] } = checkpoint;
  checkLine(origin, 'origin');
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new CheckpointError(`checkpoint size must be a non-negative safe integer, got ${size}`);
  }
  if (root.length !== HASH_SIZE)
    throw new CheckpointError(`checkpoint root must have ${HASH_SIZE} bytes`);
  for (const line of extensions) checkLine(line, 'extension line');
  return [origin, String(size), root.toString('base64'), ...extensions]
    .map((l) => `${l}\n`)
    .join('');
}

/** Parses checkpoint note text strictly: no leading zeros, canonical base64, a SHA-256 root, a final newline. */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith('\n')) throw new CheckpointError('checkpoint must end with a newline');
  const lines = text.slice(0, -1).split('\n');
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (origin === undefined || sizeText === undefined || rootText === undefined) {
    throw new CheckpointError('checkpoint needs origin, size and root lines');
  }
  checkLine(origin, 'origin');
  if (!DECIMAL.test(sizeText)) {
    throw new CheckpointError(
      `checkpoint size ${JSON.stringify(sizeText)} is not a decimal number without leading zeros`,
    );
  }
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size))
    throw new CheckpointError(`checkpoint size ${sizeText} exceeds 2^53 - 1`);
  const root = decodeBase64(rootText);
  if (!root)
    throw new CheckpointError(
      `checkpoint root ${JSON.stringify(rootText)} is not canonical base64`,
    );
  if (root.length !== HASH_SIZE) {
    throw new CheckpointError(`checkpoint root has ${root.length} bytes, not ${HASH_SIZE}`);
  }
  for (const line of extensions) checkLine(line, 'extension line');
  return { origin, size, root, extensions };
}
