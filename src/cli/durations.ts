import { CliError } from './errors.js';

const UNITS = { d: 86_400_000, h: 3_600_000, m: 60_000 } as const;

/** Milliseconds of `30d`, `12h` or `90m`; undefined for anything else. */
export function durationMs(v: string): number | undefined {
  const m = /^([1-9][0-9]{0,4})([dhm])$/.exec(v);
  return m ? Number(m[1]) * UNITS[m[2] as keyof typeof UNITS] : undefined;
}

/** Milliseconds of `30d`, `12h` or `90m`, or a usage error naming the option (exit 2). */
export function requireDuration(v: string, option: string): number {
  const ms = durationMs(v);
  if (ms === undefined)
    throw new CliError(
      `${option} ${JSON.stringify(v)}: give a duration such as 30d, 12h or 90m`,
      2,
    );
  return ms;
}
