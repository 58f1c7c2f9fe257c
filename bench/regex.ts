// Nanoseconds per whole-value match of typical route regexes, for each candidate engine, against a
// plain (backtracking) JavaScript RegExp. Run by hand: `node bench/regex.ts`. Results: bench/README.md.
//
// re2-wasm is not a dependency; to include it, install it in a scratch directory and point
// RE2_WASM at its package folder (RE2_WASM=/tmp/x/node_modules/re2-wasm node bench/regex.ts).
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import { RE2JS } from 're2js';
import { compileRe2 } from '../src/lib/re2/match.ts';

v8.setFlagsFromString('--enable-experimental-regexp-engine');

// [RE2 pattern, the same in JavaScript syntax, JavaScript flags, a matching value, a value that does not match]
const cases: [string, string, string, string, string][] = [
  ['/api/v[0-9]+/.*', '/api/v[0-9]+/.*', '', '/api/v2/products/12345', '/web/v2/products/12345'],
  ['^(GET|POST)$', '^(GET|POST)$', '', 'POST', 'DELETE'],
  ['.*jason.*', '.*jason.*', '', 'session=abc; user=jason; theme=dark', 'session=abc; user=maria'],
  ['/static/.*', '/static/.*', '', '/static/css/bootstrap.min.css', '/productpage'],
  ['/reviews/(?P<id>\\d+)', '/reviews/(?<id>\\d+)', '', '/reviews/0', '/reviews/x'],
  ['(?i)/productpage', '/productpage', 'i', '/ProductPage', '/product'],
  ['[a-z0-9-]+\\.example\\.com', '[a-z0-9-]+\\.example\\.com', '', 'shop-eu-1.example.com', 'example.org'],
];

type Match = (v: string) => boolean;

function nsPerMatch(match: Match, values: string[]): number {
  let sink = 0;
  for (let i = 0; i < 50_000; i++) if (match(values[i & 1])) sink++;
  const n = 400_000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) if (match(values[i & 1])) sink++;
  const ns = Number(process.hrtime.bigint() - start) / n;
  if (sink < 0) console.log(sink);
  return ns;
}

async function wasmEngine(): Promise<((p: string, flags: string) => Match) | undefined> {
  const dir = process.env.RE2_WASM;
  if (!dir) return undefined;
  const mod = await import(pathToFileURL(path.join(dir, 'build/src/re2.js')).href);
  const RE2 = mod.RE2 ?? mod.default.RE2;
  return (p, flags) => {
    const re = new RE2(`^(?:${p})$`, `u${flags}`);
    return (v) => re.test(v);
  };
}

const wasm = await wasmEngine();
const rows: string[][] = [];
for (const [re2, js, flags, yes, no] of cases) {
  const values = [yes, no];
  const candidates: [string, () => Match][] = [
    [
      'RegExp (backtracking)',
      () => {
        const re = new RegExp(`^(?:${js})$`, `u${flags}`);
        return (v) => re.test(v);
      },
    ],
    ['trellis compileRe2', () => compileRe2(re2)],
    [
      're2js',
      () => {
        const re = RE2JS.compile(re2);
        return (v) => re.matches(v);
      },
    ],
    [
      'V8 linear (flag l)',
      () => {
        const re = new RegExp(`^(?:${js})$`, `l${flags}`);
        return (v) => re.test(v);
      },
    ],
  ];
  if (wasm) candidates.push(['re2-wasm', () => wasm(js, flags)]);
  const base = nsPerMatch(candidates[0][1](), values);
  for (const [name, make] of candidates) {
    let match: Match;
    try {
      match = make();
    } catch (err) {
      rows.push([re2, name, 'refused', (err as Error).message.replace(/^.*: /, '')]);
      continue;
    }
    assert(match(yes) && !match(no), `${name} disagrees on ${re2}`);
    const ns = name.startsWith('RegExp') ? base : nsPerMatch(match, values);
    rows.push([re2, name, ns.toFixed(0), `${(ns / base).toFixed(1)}x`]);
  }
}

function assert(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

console.log('| regex | engine | ns/match | vs RegExp |\n|---|---|---:|---:|');
for (const r of rows) console.log(`| \`${r[0]}\` | ${r.join(' | ').slice(r[0].length + 3)} |`);
