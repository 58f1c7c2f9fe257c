// The code table in src/lib/codes.ts is the one list of TRL_ codes: every code the product raises is in
// it, every entry is raised somewhere, and the reference docs list exactly its codes with their statuses.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES } from '../../src/lib/codes.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const TABLE_FILE = path.join(ROOT, 'src/lib/codes.ts');
const CODE = /\bTRL_[A-Z0-9_]*[A-Z0-9]\b/g;
const QUOTED_CODE = /(['"`])(TRL_[A-Z0-9_]+)\1/g;

function filesUnder(dir: string, ext: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(ext))
    .map((e) => path.join(e.parentPath, e.name));
}

const read = (file: string) => readFileSync(file, 'utf8');
const rel = (file: string) => path.relative(ROOT, file);

/** code -> status for every markdown table row `| <status?> | `TRL_A`, `TRL_B` | ...` in `text`. */
function tableRows(text: string, statusCell: number, codesCell: number): Map<string, number[]> {
  const rows = new Map<string, number[]>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('|')) continue;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const codes = cells[codesCell]?.match(/`TRL_[A-Z0-9_]+`/g);
    if (!codes || codes.join(', ') !== cells[codesCell]) continue;
    const status = Number(cells[statusCell]);
    for (const c of codes) {
      const code = c.slice(1, -1);
      rows.set(code, [...(rows.get(code) ?? []), status]);
    }
  }
  return rows;
}

function assertRowsMatch(rows: Map<string, number[]>, expected: string[], doc: string): void {
  const problems: string[] = [];
  for (const code of expected) {
    const want = ERROR_CODES[code as keyof typeof ERROR_CODES].status;
    const got = rows.get(code);
    if (!got) problems.push(`${code} (${want}) has no row`);
    else if (got.length > 1) problems.push(`${code} has ${got.length} rows`);
    else if (got[0] !== want) problems.push(`${code} says ${got[0]}, the table says ${want}`);
  }
  for (const code of rows.keys())
    if (!expected.includes(code)) problems.push(`${code} has a row but is not in src/lib/codes.ts`);
  assert.deepEqual(problems, [], `${doc} disagrees with src/lib/codes.ts`);
}

test('every TRL_ code in src/ is in the table, and every table entry is raised somewhere in src/', () => {
  const files = filesUnder(path.join(ROOT, 'src'), '.ts').filter((f) => f !== TABLE_FILE);
  const used = new Map<string, string>();
  for (const file of files.filter((f) => !f.endsWith('.test.ts'))) {
    for (const m of read(file).matchAll(QUOTED_CODE)) used.set(m[2], rel(file));
  }
  const missing = [...used].filter(([code]) => !(code in ERROR_CODES)).map(([c, f]) => `${c} (${f})`);
  assert.deepEqual(missing, [], 'raised in src/ but missing from src/lib/codes.ts');
  const unused = Object.keys(ERROR_CODES).filter((code) => !used.has(code));
  assert.deepEqual(unused, [], 'in src/lib/codes.ts but raised nowhere in src/: drop them or use them');

  // Tests assert only codes that can happen.
  const asserted = new Set<string>();
  const tests = filesUnder(path.join(ROOT, 'test'), '.ts').filter((f) => f !== import.meta.filename);
  for (const file of [...files, ...tests])
    for (const m of read(file).matchAll(QUOTED_CODE)) if (!(m[2] in ERROR_CODES)) asserted.add(m[2]);
  assert.deepEqual([...asserted], [], 'tests name codes that are not in src/lib/codes.ts');
});

test('docs/reference/errors.md lists every code once, with the table status', () => {
  const doc = read(path.join(ROOT, 'docs/reference/errors.md'));
  assertRowsMatch(tableRows(doc, 1, 0), Object.keys(ERROR_CODES), 'docs/reference/errors.md');
});

test('response-flags.md lists every TRL_HTTP_ code once, with the table status', () => {
  const doc = read(path.join(ROOT, 'docs/reference/response-flags.md'));
  const section = doc.slice(doc.indexOf('## Refused HTTP/1.1 requests'));
  const http = Object.keys(ERROR_CODES).filter((c) => c.startsWith('TRL_HTTP_'));
  assertRowsMatch(tableRows(section, 0, 1), http, 'docs/reference/response-flags.md');
});

test('the docs mention no code the table lacks', () => {
  const docs = [path.join(ROOT, 'README.md'), ...filesUnder(path.join(ROOT, 'docs'), '.md')];
  const stale = docs.flatMap((file) =>
    [...read(file).matchAll(CODE)].filter((m) => !(m[0] in ERROR_CODES)).map((m) => `${m[0]} (${rel(file)})`),
  );
  assert.deepEqual(stale, [], 'docs name codes that are not in src/lib/codes.ts');
});
