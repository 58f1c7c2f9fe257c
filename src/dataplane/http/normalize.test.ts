import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PathNormalization } from '../../compile/snapshot.ts';
import { normalizeAuthority, pathNormalizer, stripTrailingHostDot } from './normalize.ts';

const MODES: PathNormalization[] = ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'];

test('normalizes paths before routing', () => {
  const normalizeRequestTarget = pathNormalizer('BASE');
  const cases: [string, string, string][] = [
    ['/productpage', '/productpage', ''],
    ['/public/../admin', '/admin', ''],
    ['/public/%2e%2e/admin', '/admin', ''],
    ['/public/%2E%2E/admin', '/admin', ''],
    ['/./admin', '/admin', ''],
    ['/admin#frag', '/admin', ''],
    ['/admin?x=1#frag', '/admin', '?x=1'],
    ['/a/b/./c/../d/', '/a/b/d/', ''],
    ['/a/..', '/', ''],
    ['/../../x', '/x', ''],
    ['/%7Euser/%41', '/~user/A', ''],
    ['/keep%2Fslash', '/keep%2Fslash', ''],
  ];
  for (const [input, path, query] of cases) {
    assert.deepEqual(normalizeRequestTarget(input), { ok: true, path, query }, input);
  }
});

test('rejects NUL in the path', () => {
  const normalizeRequestTarget = pathNormalizer('BASE');
  assert.equal(normalizeRequestTarget('/a%00b').ok, false);
  assert.equal(normalizeRequestTarget('/a\0b').ok, false);
  assert.equal(normalizeRequestTarget('relative').ok, false);
});

// One row per input: the path each mode gives, in the order NONE, BASE, MERGE_SLASHES,
// DECODE_AND_MERGE_SLASHES. Rows marked with a bulletin are the bypasses Istio fixed.
const TABLE: [input: string, none: string, base: string, merge: string, decode: string][] = [
  // CVE-2019-9901: dot segments, plain and percent-encoded.
  ['/public/../admin', '/public/../admin', '/admin', '/admin', '/admin'],
  ['/public/%2e%2e/admin', '/public/%2e%2e/admin', '/admin', '/admin', '/admin'],
  ['/public/%2E%2e/admin', '/public/%2E%2e/admin', '/admin', '/admin', '/admin'],
  ['/./admin', '/./admin', '/admin', '/admin', '/admin'],
  ['/public/.%2e/admin', '/public/.%2e/admin', '/admin', '/admin', '/admin'],
  // The measured bypass: `\` is a `/` to BASE, so `..\` is a dot segment.
  ['/static/..\\index.html', '/static/..\\index.html', '/index.html', '/index.html', '/index.html'],
  ['/static\\..\\..\\admin', '/static\\..\\..\\admin', '/admin', '/admin', '/admin'],
  // CVE-2021-31920: slashes, doubled or escaped.
  ['//admin', '//admin', '//admin', '/admin', '/admin'],
  ['/public//../admin', '/public//../admin', '/public/admin', '/public/admin', '/public/admin'],
  ['/%2Fadmin', '/%2Fadmin', '/%2Fadmin', '/%2Fadmin', '/admin'],
  ['/%2fadmin', '/%2fadmin', '/%2Fadmin', '/%2Fadmin', '/admin'],
  ['/%5Cadmin', '/%5Cadmin', '/%5Cadmin', '/%5Cadmin', '/admin'],
  ['/%5cadmin', '/%5cadmin', '/%5Cadmin', '/%5Cadmin', '/admin'],
  ['/public/%2e%2e%2fadmin', '/public/%2e%2e%2fadmin', '/public/..%2Fadmin', '/public/..%2Fadmin', '/admin'],
  ['/public%2F..%2Fadmin', '/public%2F..%2Fadmin', '/public%2F..%2Fadmin', '/public%2F..%2Fadmin', '/admin'],
  ['/a\\\\b', '/a\\\\b', '/a//b', '/a/b', '/a/b'],
  // CVE-2021-39156 and CVE-2020-8595: fragment and query never reach a path match.
  ['/user/profile#section1', '/user/profile', '/user/profile', '/user/profile', '/user/profile'],
  ['/admin#', '/admin', '/admin', '/admin', '/admin'],
  ['/admin?', '/admin', '/admin', '/admin', '/admin'],
  ['/admin?x#y', '/admin', '/admin', '/admin', '/admin'],
  // Unreserved characters are decoded once, never twice; other escapes keep their meaning, upper-cased.
  ['/%41dmin', '/%41dmin', '/Admin', '/Admin', '/Admin'],
  ['/%61dmin', '/%61dmin', '/admin', '/admin', '/admin'],
  ['/%252e%252e/admin', '/%252e%252e/admin', '/%252e%252e/admin', '/%252e%252e/admin', '/%252e%252e/admin'],
  ['/a%3bb', '/a%3bb', '/a%3Bb', '/a%3Bb', '/a%3Bb'],
  ['/a%zz', '/a%zz', '/a%zz', '/a%zz', '/a%zz'],
  ['/%7e%5f%2d%2e', '/%7e%5f%2d%2e', '/~_-.', '/~_-.', '/~_-.'],
  // `;` is part of a segment to Envoy: not stripped, and `..;` is no dot segment.
  [
    '/admin;jsessionid=x',
    '/admin;jsessionid=x',
    '/admin;jsessionid=x',
    '/admin;jsessionid=x',
    '/admin;jsessionid=x',
  ],
  ['/static/..;/admin', '/static/..;/admin', '/static/..;/admin', '/static/..;/admin', '/static/..;/admin'],
  // Trailing dot segments keep the directory form.
  ['/a/b/..', '/a/b/..', '/a/', '/a/', '/a/'],
  ['/a/.', '/a/.', '/a/', '/a/', '/a/'],
  ['/..', '/..', '/', '/', '/'],
  ['///', '///', '///', '/', '/'],
];

test('every mode normalizes the bulletin cases as Envoy does', () => {
  for (const row of TABLE) {
    const [input, ...want] = row;
    MODES.forEach((mode, i) => {
      const got = pathNormalizer(mode)(input);
      assert.ok(got.ok, `${mode} ${input}`);
      assert.equal(got.path, want[i], `${mode} ${JSON.stringify(input)}`);
    });
  }
});

test('the query goes on as sent, in every mode', () => {
  for (const mode of MODES) {
    const got = pathNormalizer(mode)('/a/b?x=%2e%2e/../&y=%2F#frag');
    assert.deepEqual(got, { ok: true, path: '/a/b', query: '?x=%2e%2e/../&y=%2F' }, mode);
  }
});

test('NUL and relative targets are refused in every mode (CVE-2019-9900)', () => {
  for (const mode of MODES) {
    for (const bad of ['/a%00b', '/a\0b', 'relative', '*', '%2Fadmin'])
      assert.equal(pathNormalizer(mode)(bad).ok, false, `${mode} ${JSON.stringify(bad)}`);
    // A NUL after the path is the query's, which the app parses: the path itself is fine.
    assert.equal(pathNormalizer(mode)('/a?x=%00').ok, true, mode);
  }
});

test('authorities match lower-cased and without the trailing dot (CVE-2021-39155)', () => {
  const cases: [string, string, string][] = [
    ['Httpbin.Foo', 'httpbin.foo', 'Httpbin.Foo'],
    ['httpbin.foo.', 'httpbin.foo', 'httpbin.foo'],
    ['HTTPBIN.foo.:8080', 'httpbin.foo:8080', 'HTTPBIN.foo:8080'],
    ['httpbin.foo:80', 'httpbin.foo:80', 'httpbin.foo:80'],
    ['[::1]:80', '[::1]:80', '[::1]:80'],
    ['.', '.', '.'],
    ['', '', ''],
  ];
  for (const [input, matched, sent] of cases) {
    assert.equal(normalizeAuthority(input), matched, input);
    assert.equal(stripTrailingHostDot(input), sent, input);
  }
});
