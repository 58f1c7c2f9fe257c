// The layout rules of ARCHITECTURE.md, checked on the sources: dependencies point one way, the data
// plane stands on the snapshot contract alone, and test code stays out of the product.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const SRC = path.resolve(import.meta.dirname, '../src');

function productFiles(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return productFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}

/** Every module a file imports (type-only imports too), relative ones resolved to paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/gm)].map(
    (m) => m[1],
  );
  for (const m of text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)) specs.push(m[1]);
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) specs.push(m[1]);
  return specs.map((s) => (s.startsWith('.') ? path.resolve(path.dirname(file), s) : s));
}

const files = productFiles();
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const rel = (f: string) => path.relative(SRC, f);

test('no module in src/ imports node:test or anything under test/', () => {
  const bad: string[] = [];
  for (const [f, deps] of graph)
    for (const d of deps)
      if (d === 'node:test' || d.startsWith(path.resolve(SRC, '../test'))) bad.push(`${rel(f)} → ${d}`);
  assert.deepEqual(bad, []);
});

test('the data plane imports nothing from api/ or controlplane/, and the reverse', () => {
  const crossing = (from: string, to: string[]) => {
    const bad: string[] = [];
    for (const [f, deps] of graph) {
      if (!rel(f).startsWith(`${from}/`)) continue;
      for (const d of deps)
        if (to.some((t) => d.startsWith(path.join(SRC, t) + path.sep))) bad.push(`${rel(f)} → ${rel(d)}`);
    }
    return bad;
  };
  assert.deepEqual(crossing('dataplane', ['api', 'controlplane']), []);
  assert.deepEqual(crossing('controlplane', ['dataplane']), []);
  assert.deepEqual(crossing('compile', ['dataplane', 'controlplane', 'push', 'cli', 'platform']), []);
  assert.deepEqual(crossing('api', ['compile', 'dataplane', 'controlplane', 'push', 'cli', 'platform']), []);
});

test('compile and api stay pure: no Node I/O modules', () => {
  const io = /^node:(fs|net|tls|http|http2|child_process|dgram|dns|os|worker_threads)(\/|$)/;
  const bad: string[] = [];
  for (const [f, deps] of graph)
    if (/^(compile|api)\//.test(rel(f))) for (const d of deps) if (io.test(d)) bad.push(`${rel(f)} → ${d}`);
  assert.deepEqual(bad, []);
});

test('no import cycle in src/', () => {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const cycles: string[] = [];
  const visit = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const d of graph.get(f) ?? []) {
      if (!graph.has(d)) continue;
      if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].map(rel).join(' → '));
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of files) if (!state.has(f)) visit(f);
  assert.deepEqual(cycles, []);
});
