import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_PROGRAM_SIZE, MAX_REGEX_LENGTH, re2Problem } from './syntax.ts';

const rejected: [string, string][] = [
  ['(?=a)', 'lookahead (?=...) is not supported'],
  ['a(?!b)', 'negative lookahead (?!...) is not supported'],
  ['(?<=a)b', 'lookbehind (?<=...) is not supported'],
  ['(?<!a)b', 'negative lookbehind (?<!...) is not supported'],
  ['(?>a)', 'atomic group'],
  ['(a)\\1', 'backreference \\1 is not supported'],
  ['(?<n>a)\\k<n>', 'named backreference \\k<...> is not supported'],
  ['(?P<n>a)(?P=n)', 'named backreference (?P=name)'],
  ['a{1001}', "exceeds RE2's limit of 1000"],
  ['a{3,2}', 'minimum above maximum'],
  ['(?U)a*', 'the ungreedy flag (?U) is not supported'],
  ['(a', 'missing closing )'],
  ['a)', 'regex does not compile'],
  ['[a', 'missing closing ]'],
  ['*a', 'regex does not compile: nothing to repeat'],
  ['\\Z', 'regex does not compile'],
  ['[[:^alpha:]]', 'negated POSIX class'],
  ['[[:alfa:]]', 'unknown POSIX class'],
  ['x'.repeat(MAX_REGEX_LENGTH + 1), 'at most 1024 are accepted (ISTIO-SECURITY-2026-006)'],
  // RE2 fails the first with "pattern too large - compile failed"; Istio's Envoy refuses all three.
  ['((a{1000}){1000}){1000}', 'pattern too large: RE2 would compile it to about 1002002000 instructions'],
  [`(?:${'a'.repeat(40)}){1000}`, `refuse more than ${MAX_PROGRAM_SIZE} (re2.max_program_size.error_level)`],
  ['(?:a{1000}|b{1000}){700}', 'pattern too large'],
  // What the translation lets through but RE2 (and so the matcher) refuses.
  ['(a{100}){11}', 'regex does not compile: invalid repeat count'],
  ['\\C', 'regex does not compile: invalid escape sequence'],
];

for (const [pattern, message] of rejected) {
  test(`RE2 rejects ${pattern.slice(0, 30)}`, () => {
    const problem = re2Problem(pattern);
    assert.ok(problem?.includes(message), `got ${problem}`);
  });
}

test('programs up to the size limit are accepted', () => {
  assert.equal(re2Problem(`(?:${'a'.repeat(30)}){1000}`), undefined);
  assert.equal(re2Problem('[a-z]{1000}\\.[0-9]{1000}|(?:x+y*z?){1000}'), undefined);
});

test('octal escapes are not backreferences', () => {
  assert.equal(re2Problem('\\12'), undefined);
  assert.equal(re2Problem('x'.repeat(MAX_REGEX_LENGTH)), undefined);
});
