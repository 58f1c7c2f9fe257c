import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRe2 } from './match.ts';

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
  // Full match: the whole value, whatever anchors the pattern has or lacks.
  ['/api', '/api/v1', false],
  ['api', '/api', false],
  ['/api|/web', '/api/x', false],
  ['^/api$', '/api', true],
  ['a|ab', 'ab', true], // leftmost-first alternation still has to cover the whole value
  ['(GET|POST)', 'POST', true],
  ['^(GET|POST)$', 'PUT', false],
  ['.*jason.*', 'user=jason; x', true],
  ['.*jason.*', 'user=jasom', false],
  ['.*', 'a\nb', false], // `.` stops at a newline without (?s)
  ['(?s).*', 'a\nb', true],
  ['/static/.*', '/static/\n', false],
  ['\\d{3}-\\d{4}', '555-1234', true],
  ['[^/]+', 'a/b', false],
  ['\\w+@\\w+\\.com', 'jason@example.com', true],
  ['(?i)JASON', 'jason', true],
  ['(?i)[a-c]+', 'AbC', true],
  ['(?i)k', '\u212a', true], // Kelvin sign folds to k in RE2
  ['(?i)straße', 'STRASSE', false], // RE2 folds one code point at a time
  ['[[:upper:]]+', 'ÄB', false], // POSIX classes are ASCII
  ['\\p{Lu}+', 'ÄB', true],
  ['[😀-😂]', '😁', true],
  ['\\x{1F600}', '😀', true],
  ['(a|)', '', true],
  ['a\\|b', 'a|b', true],
  ['\\^\\$', '^$', true],
];

for (const [pattern, input, want] of matches) {
  test(`RE2 ${pattern} ${want ? 'matches' : 'does not match'} ${JSON.stringify(input)}`, () => {
    assert.equal(compileRe2(pattern)(input), want);
  });
}

test('ignoreCase', () => {
  assert.ok(compileRe2('/Reviews', { ignoreCase: true })('/reviews'));
  assert.ok(!compileRe2('/Reviews')('/reviews'));
});

// The shapes that become string comparisons must mean what the automaton means.
const shortcutCases: [string, string[]][] = [
  ['/productpage', ['/productpage', '/productpage/', '', '/Productpage']],
  ['^/api/v1/.*$', ['/api/v1/', '/api/v1/x\ny', '/api/v1', '/api/v2/x']],
  ['/static/.*', ['/static/', '/static/a.css', 'x/static/', '/static']],
  ['.*jason.*', ['jason', 'a jason b', 'jaso', 'jason\n', '']],
  ['.*a\\.b.*', ['a.b', 'axb', 'xa.bx']],
  ['^(GET|POST)$', ['GET', 'POST', 'PUT', 'GETPOST', '']],
  ['(?:v1|v2|)', ['v1', 'v2', '', 'v3']],
  ['GET|HEAD', ['GET', 'HEAD', 'GETHEAD']],
  ['a\\\\|b', ['a\\', 'b', 'a\\|b']],
  ['\\/a\\.b', ['/a.b', '/axb']],
];

test('literal shortcuts agree with the automaton', async () => {
  const { RE2JS } = await import('re2js');
  for (const [pattern, inputs] of shortcutCases) {
    const re = RE2JS.compile(pattern);
    const m = compileRe2(pattern);
    for (const input of inputs) {
      assert.equal(m(input), re.matches(input), `${pattern} on ${JSON.stringify(input)}`);
    }
  }
});

// Patterns on which a backtracking engine takes exponential or polynomial time on `a`*N.
// [pattern, whether `a`*N matches it]
const adversarial: [string, boolean][] = [
  ['(a+)+b', false],
  ['(a|a)*c', false],
  ['(a*)*b', false],
  ['((a+)+)+c', false],
  ['(.*a){20}', true],
  ['(.*a){20}b', false],
  ['(a|aa)+b', false],
  ['(?:a?){30}a{30}c', false],
];

/**
 * The fastest of five timings of one match: a busy machine (CI, parallel test files) only ever adds
 * time, so the minimum is the match itself and a preemption or GC pause doesn't fail the test.
 */
function msPerMatch(match: (v: string) => boolean, value: string): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    match(value);
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

for (const [pattern, matchesAs] of adversarial) {
  test(`ReDoS: ${pattern} runs in linear time up to 8 KB`, () => {
    const m = compileRe2(pattern);
    assert.equal(m('a'.repeat(8192)), matchesAs);
    msPerMatch(m, 'a'.repeat(2048)); // warm up the JIT before timing
    const small = msPerMatch(m, 'a'.repeat(2048));
    const large = msPerMatch(m, 'a'.repeat(8192));
    assert.ok(large < 50, `an 8 KB value took ${large.toFixed(1)} ms`);
    // Quadratic would be 16x; timer granularity dominates below ~0.5 ms, hence the floor.
    assert.ok(large < 8 * Math.max(small, 0.5), `2 KB: ${small.toFixed(2)} ms, 8 KB: ${large.toFixed(2)} ms`);
  });
}
