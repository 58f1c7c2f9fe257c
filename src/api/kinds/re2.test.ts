import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRe2, MAX_REGEX_LENGTH, re2Problem } from './re2.ts';

// [RE2 pattern, input, whole-value match expected]
const matches: [string, string, boolean][] = [
  ['^/api/v[0-9]+/.*', '/api/v1/products', true],
  ['/static/.*', '/static/css/app.css', true],
  ['/static/.*', '/x/static/a', false],
  ['(?i)/productpage', '/ProductPage', true],
  ['a(?i)b|c', 'C', true], // the flag reaches the other branch, as in RE2
  ['a(?i)b|c', 'aB', true],
  ['x(?:(?i)y)z', 'xYz', true],
  ['x(?:(?i)y)z', 'xYZ', false], // ...but not beyond its group
  ['(?s:a.b)', 'a\nb', true],
  ['/reviews/(?P<id>\\d+)', '/reviews/42', true],
  ['\\Qa.b\\E', 'a.b', true],
  ['\\Qa.b\\E', 'axb', false],
  ['[[:digit:]]+-[[:alpha:]]', '12-x', true],
  ['\\pL+', 'héllo', true],
  ['\\p{Greek}+', 'αβ', true],
  ['a{2,5}', 'aaa', true],
  ['a{', 'a{', true],
  ['{x}', '{x}', true],
  ['[]a]+', ']a', true],
  ['abc\\z', 'abc', true],
  ['\\Aabc', 'abc', true],
  ['\\x{41}\\x42\\103', 'ABC', true],
  ['a\\-b\\!', 'a-b!', true],
  ['.', '😀', true], // RE2 matches code points
];

for (const [pattern, input, want] of matches) {
  test(`RE2 ${pattern} ${want ? 'matches' : 'does not match'} ${JSON.stringify(input)}`, () => {
    assert.equal(compileRe2(pattern, { fullMatch: true }).test(input), want);
  });
}

test('ignoreCase', () => {
  assert.ok(compileRe2('/Reviews', { ignoreCase: true, fullMatch: true }).test('/reviews'));
});

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
];

for (const [pattern, message] of rejected) {
  test(`RE2 rejects ${pattern.slice(0, 30)}`, () => {
    const problem = re2Problem(pattern);
    assert.ok(problem?.includes(message), `got ${problem}`);
  });
}

test('octal escapes are not backreferences', () => {
  assert.equal(re2Problem('\\12'), undefined);
  assert.equal(re2Problem('x'.repeat(MAX_REGEX_LENGTH)), undefined);
});
