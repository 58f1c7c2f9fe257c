// Full-value matching of RE2 patterns (Envoy's `safe_regex`), in time linear in the value.
//
// Engine chosen by measurement (bench/regex.ts, numbers in bench/README.md): re2js runs typical route
// regexes in 150-300 ns where a backtracking RegExp takes 20-50 ns, re2-wasm 2-3 us (the string crosses
// into wasm per call), and V8's own linear engine (`--enable-experimental-regexp-engine`, flag `l`)
// refuses the `u` and `i` flags, lookaround-free anchors and counted repeats, so it cannot run RE2.
// The shapes most routes use are recognised here and become string comparisons instead.

import { parseRe2 } from './syntax.ts';

export type ValueMatcher = (value: string) => boolean;

/** Compiles an RE2 pattern into a whole-value matcher; throws Re2SyntaxError for what RE2 refuses. */
export function compileRe2(pattern: string, opts: { ignoreCase?: boolean } = {}): ValueMatcher {
  const re = parseRe2(pattern, opts.ignoreCase === true);
  return (opts.ignoreCase ? undefined : literalMatcher(pattern)) ?? ((v) => re.matches(v));
}

// A literal run: characters without meaning in RE2, or punctuation escaped with a backslash.
const LITERAL = String.raw`(?:[^\\.+*?()|[\]{}^$]|\\[!-/:-@[-\`{-~])*`;
const shapes = new RegExp(
  String.raw`^\^?(?:(?<exact>${LITERAL})|(?<prefix>${LITERAL})\.\*|\.\*(?<infix>${LITERAL})\.\*|\(\?:(?<set>${LITERAL}(?:\|${LITERAL})+)\)|\((?<capset>${LITERAL}(?:\|${LITERAL})+)\)|(?<bare>${LITERAL}(?:\|${LITERAL})+))\$?$`,
);

/**
 * A matcher made of string comparisons for `lit`, `lit.*`, `.*lit.*` and `(a|b|c)`, optionally between
 * `^` and `$` (which only anchor at the ends RE2's full match anchors anyway); undefined for anything else.
 * `.` stops at a newline, as in RE2 without `(?s)`.
 */
function literalMatcher(pattern: string): ValueMatcher | undefined {
  const m = shapes.exec(pattern);
  if (!m?.groups) return undefined;
  const { exact, prefix, infix } = m.groups;
  const set = m.groups.set ?? m.groups.capset ?? m.groups.bare;
  if (exact !== undefined) {
    const lit = literalText(exact);
    return (v) => v === lit;
  }
  if (prefix !== undefined) {
    const lit = literalText(prefix);
    return (v) => v.startsWith(lit) && !v.includes('\n', lit.length);
  }
  if (infix !== undefined) {
    const lit = literalText(infix);
    // A newline inside the literal may sit between the two `.*`: left to the automaton.
    if (lit.includes('\n')) return undefined;
    return (v) => v.includes(lit) && !v.includes('\n');
  }
  const values = new Set(alternatives(set!).map(literalText));
  return (v) => values.has(v);
}

function alternatives(literals: string): string[] {
  const out = [''];
  for (let i = 0; i < literals.length; i++) {
    if (literals[i] === '|') out.push('');
    else out[out.length - 1] += literals[i] === '\\' ? literals[i] + literals[++i] : literals[i];
  }
  return out;
}

function literalText(literal: string): string {
  return literal.replace(/\\(.)/gs, '$1');
}
