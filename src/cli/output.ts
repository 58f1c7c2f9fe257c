// Shared output for the CLI: aligned tables, ages, label and list cells, YAML and JSON.
import { stringify } from 'yaml';

/** Columns left-aligned, separated by three spaces (like kubectl); no trailing spaces. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('   ')
      .trimEnd();
  return `${[headers, ...rows].map(line).join('\n')}\n`;
}

/** kubectl-style age: `45s`, `3m12s`, `25m`, `5h3m`, `20h`, `3d4h`, `40d`, `2y`. */
export function age(timestamp: string | undefined, now: number = Date.now()): string {
  const t = timestamp ? Date.parse(timestamp) : Number.NaN;
  if (Number.isNaN(t)) return '<unknown>';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const d = Math.floor(h / 24);
  if (s < 120) return `${s}s`;
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (h < 3) return `${m}m`;
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (d < 2) return `${h}h`;
  if (d < 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

/** Comma-joined, or `<none>` when empty (as kubectl shows empty columns). */
export function list(values: readonly string[] | undefined): string {
  return values && values.length > 0 ? values.join(',') : '<none>';
}

/** `k=v,k2=v2`, or `<none>`. */
export function labelsOf(labels: Record<string, string> | undefined): string {
  return list(Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`));
}

/** YAML documents separated by `---`. */
export function yamlDocs(docs: readonly unknown[]): string {
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n');
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export function write(text: string): void {
  process.stdout.write(text);
}

export function writeErr(text: string): void {
  process.stderr.write(text);
}
