import { describe, expect, it } from 'vitest';
import { isModelgateError } from './errors.js';
import { assertAlias, assertFilePath, assertName, assertTags } from './names.js';

const refuses = (fn: () => void, code: string) => {
  try {
    fn();
  } catch (e) {
    return isModelgateError(e) && e.code === code;
  }
  return false;
};

describe('naming rules', () => {
  it('accepts DNS-label-like model names with dots', () => {
    for (const ok of ['a', 'fraud-detector', 'llama-3.1-8b', '0day', 'x'.repeat(63)]) {
      expect(
        refuses(() => assertName('model', ok), 'INVALID_NAME'),
        ok,
      ).toBe(false);
    }
    for (const bad of [
      '',
      'A',
      '-a',
      'a-',
      'a..b',
      '.a',
      'a.',
      'a_b',
      'a b',
      'x'.repeat(64),
      'ü',
    ]) {
      expect(
        refuses(() => assertName('model', bad), 'INVALID_NAME'),
        bad,
      ).toBe(true);
    }
  });

  it('requires aliases to start with a letter, so NAME@3 is never an alias', () => {
    expect(refuses(() => assertAlias('production'), 'INVALID_NAME')).toBe(false);
    for (const bad of ['3', '1abc', 'Prod', 'a.b', 'a-'])
      expect(
        refuses(() => assertAlias(bad), 'INVALID_NAME'),
        bad,
      ).toBe(true);
  });

  it('accepts clean relative POSIX paths only', () => {
    for (const ok of ['model.bin', 'a/b/c.json', '.hidden', 'a/.b', 'ünï/cødé', 'a..b']) {
      expect(
        refuses(() => assertFilePath(ok), 'INVALID_PATH'),
        ok,
      ).toBe(false);
    }
    for (const bad of [
      '',
      '/abs',
      '../x',
      'a/../b',
      'a/./b',
      './a',
      'a//b',
      'a/',
      'a\\b',
      'C:x',
      'a\u0000b',
      'a\nb',
      'x'.repeat(1025),
    ]) {
      expect(
        refuses(() => assertFilePath(bad), 'INVALID_PATH'),
        JSON.stringify(bad),
      ).toBe(true);
    }
  });

  it('limits tags in shape and number', () => {
    expect(refuses(() => assertTags(['env=prod', 'team:risk', 'v1.2']), 'INVALID_NAME')).toBe(
      false,
    );
    expect(refuses(() => assertTags(['has space']), 'INVALID_NAME')).toBe(true);
    expect(refuses(() => assertTags(['"quoted"']), 'INVALID_NAME')).toBe(true);
    expect(
      refuses(() => assertTags(Array.from({ length: 65 }, (_, i) => `t${i}`)), 'INVALID_NAME'),
    ).toBe(true);
  });
});
