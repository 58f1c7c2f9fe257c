import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizeRequestTarget } from './normalize.ts';

test('normalizes paths before routing', () => {
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
  assert.equal(normalizeRequestTarget('/a%00b').ok, false);
  assert.equal(normalizeRequestTarget('/a\0b').ok, false);
  assert.equal(normalizeRequestTarget('relative').ok, false);
});
