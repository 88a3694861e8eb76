import { ModelgateError } from './errors.js';

/**
 * Model and dataset names: 1–63 characters of lowercase letters, digits, `-` and `.`, starting
 * and ending with a letter or digit, with no `..`. Like a DNS label, plus dots so that
 * `llama-3.1-8b` reads naturally. Names are case-sensitive and never change once created.
 */
export const NAME_PATTERN = '^[a-z0-9](?:[a-z0-9.-]{0,61}[a-z0-9])?$';
const NAME_RE = new RegExp(NAME_PATTERN);

/** Alias names: 1–63 characters, a lowercase letter first, then lowercase letters, digits, `-`. */
export const ALIAS_PATTERN = '^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$';
const ALIAS_RE = new RegExp(ALIAS_PATTERN);

/** Tags: 1–128 characters of letters, digits and `.:=/-_+`; no spaces or quotes. */
export const TAG_PATTERN = '^[A-Za-z0-9][A-Za-z0-9.:=/_+-]{0,127}$';
const TAG_RE = new RegExp(TAG_PATTERN);

/** Team names follow the model-name rules. */
export const TEAM_PATTERN = NAME_PATTERN;

/** Whether `name` is a valid model, dataset, team or identity name. */
export function isValidName(name: string): boolean {
  return NAME_RE.test(name) && !name.includes('..');
}

/** Throws INVALID_NAME unless `name` is a valid model or dataset name. */
export function assertName(kind: 'model' | 'dataset' | 'team', name: string): void {
  if (!isValidName(name)) {
    throw new ModelgateError(
      'INVALID_NAME',
      `invalid ${kind} name ${JSON.stringify(name)}: use 1-63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit`,
      { kind, name },
    );
  }
}

/** Throws INVALID_NAME unless `name` is a valid alias name. */
export function assertAlias(name: string): void {
  if (!ALIAS_RE.test(name)) {
    throw new ModelgateError(
      'INVALID_NAME',
      `invalid alias name ${JSON.stringify(name)}: use 1-63 lowercase letters, digits or '-', starting with a letter`,
      { kind: 'alias', name },
    );
  }
}

/** Throws INVALID_NAME unless every tag is valid; also refuses more than 64 tags. */
export function assertTags(tags: readonly string[]): void {
  if (tags.length > 64) {
    throw new ModelgateError('INVALID_NAME', `too many tags (${tags.length}); at most 64`, {
      kind: 'tag',
    });
  }
  for (const t of tags) {
    if (!TAG_RE.test(t)) {
      throw new ModelgateError(
        'INVALID_NAME',
        `invalid tag ${JSON.stringify(t)}: use up to 128 letters, digits or '.:=/_+-', starting with a letter or digit`,
        { kind: 'tag', name: t },
      );
    }
  }
}

/** Maximum length of one file path inside a version, in bytes of UTF-8. */
export const MAX_PATH_BYTES = 1024;

/**
 * Bidirectional formatting characters: they make a path display as another (`gpj.exe` shown
 * as `exe.jpg`), so a reviewer reads a different name than the one that is stored.
 */
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/u;

/**
 * Throws INVALID_PATH unless `path` is a clean relative POSIX path: no leading `/`, no `..`,
 * `.` or empty segments, no backslash, no NUL or other control characters, no bidirectional
 * formatting characters, and in Unicode NFC (so `café` has one spelling, not two).
 */
export function assertFilePath(path: string): void {
  const fail = (why: string): never => {
    throw new ModelgateError('INVALID_PATH', `invalid file path ${JSON.stringify(path)}: ${why}`, {
      path,
    });
  };
  if (path.length === 0) fail('empty');
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) fail(`longer than ${MAX_PATH_BYTES} bytes`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(path)) fail('contains a NUL or control character');
  const bidi = BIDI_CONTROLS.exec(path);
  if (bidi)
    fail(
      `contains the bidirectional formatting character U+${(bidi[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}, which makes it display as another name`,
    );
  if (path !== path.normalize('NFC'))
    fail(
      `is not in Unicode NFC; write it as ${JSON.stringify(path.normalize('NFC'))} (the same name, composed)`,
    );
  if (path.includes('\\')) fail("contains '\\'; use '/' between folders");
  if (path.startsWith('/')) fail('is absolute; paths are relative to the version root');
  if (/^[A-Za-z]:/.test(path)) fail('looks like a drive path');
  for (const seg of path.split('/')) {
    if (seg === '') fail('has an empty segment');
    if (seg === '.' || seg === '..') fail(`has a '${seg}' segment`);
  }
}
