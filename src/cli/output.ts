/** Prints rows as an aligned table with a header line. */
export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)),
  );
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}

/** Human-readable byte count (binary units). */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** Prints key: value lines. */
export function fields(pairs: [string, string | number | null | undefined][]): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs
    .map(
      ([k, v]) => `${`${k}:`.padEnd(w + 2)}${v === null || v === undefined || v === '' ? '-' : v}`,
    )
    .join('\n');
}

/** A progress bar on a terminal: bytes done, total, rate. Silent when stderr is not a TTY. */
export class Progress {
  private done = 0;
  private last = 0;
  private readonly start = Date.now();
  private readonly enabled: boolean;

  constructor(
    private readonly total: number,
    private label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.enabled = Boolean(stream.isTTY);
  }

  setLabel(label: string): void {
    this.label = label;
  }

  add(n: number): void {
    this.done += n;
    const now = Date.now();
    if (now - this.last >= 100) {
      this.last = now;
      this.render();
    }
  }

  private render(): void {
    if (!this.enabled) return;
    const frac = this.total === 0 ? 1 : Math.min(1, this.done / this.total);
    const width = 30;
    const filled = Math.round(frac * width);
    const secs = Math.max((Date.now() - this.start) / 1000, 0.001);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const cols = this.stream.columns || 100;
    const fixed = `[${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${bytes(this.done)}/${bytes(this.total)} ${bytes(this.done / secs)}/s`;
    // The numbers always show; a long file name gives way, keeping its end.
    const room = Math.max(0, cols - 2 - fixed.length);
    const label =
      this.label.length <= room ? this.label : `…${this.label.slice(this.label.length - room + 1)}`;
    const text = room > 1 ? `${fixed} ${label}` : fixed.slice(0, cols - 1);
    this.stream.write(`\r${text.padEnd(cols - 1)}`);
  }

  finish(): void {
    if (!this.enabled) return;
    this.render();
    this.stream.write('\n');
  }
}
