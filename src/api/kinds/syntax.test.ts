import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  hostCovers,
  isCIDR,
  isDns1123Label,
  isDns1123Subdomain,
  isIanaSvcName,
  isIP,
  isWildcardHost,
  labelKeyProblem,
  labelValueProblem,
} from './syntax.ts';

test('DNS-1123 names', () => {
  for (const ok of ['a', 'reviews', 'bookinfo-reviews', 'a1', '1a']) assert.ok(isDns1123Label(ok), ok);
  for (const bad of ['', 'A', '-a', 'a-', 'a.b', 'a_b', 'x'.repeat(64)]) assert.ok(!isDns1123Label(bad), bad);
  for (const ok of ['a.b', 'reviews.default.svc', 'x'.repeat(63)]) assert.ok(isDns1123Subdomain(ok), ok);
  for (const bad of ['a..b', '.a', 'a.', 'A.b', `${'a.'.repeat(127)}a`])
    assert.ok(!isDns1123Subdomain(bad), bad);
});

test('hosts with wildcards', () => {
  for (const ok of ['*', 'reviews', '*.example.com', '*example.com', 'Reviews.Default', 'a-b.c']) {
    assert.ok(isWildcardHost(ok), ok);
  }
  for (const bad of ['', 'a.*.com', '*.*.com', 'a..b', 'a b', '-a.com', `${'a'.repeat(64)}.com`]) {
    assert.ok(!isWildcardHost(bad), bad);
  }
  assert.ok(hostCovers('*.example.com', 'api.example.com'));
  assert.ok(hostCovers('*', 'anything'));
  assert.ok(hostCovers('*.example.com', '*.a.example.com'));
  assert.ok(!hostCovers('*.example.com', 'example.com'));
  assert.ok(!hostCovers('api.example.com', 'web.example.com'));
});

test('IP addresses and CIDR blocks', () => {
  for (const ok of [
    '1.2.3.4',
    '0.0.0.0',
    '255.255.255.255',
    '::',
    '::1',
    '2001:db8::1',
    'fe80::1:2',
    '::ffff:1.2.3.4',
  ]) {
    assert.ok(isIP(ok), ok);
  }
  for (const bad of [
    '1.2.3',
    '256.1.1.1',
    '01.2.3.4',
    '1.2.3.4.5',
    ':::',
    '1::2::3',
    'g::1',
    '1:2:3:4:5:6:7:8:9',
    'fe80::1%eth0',
  ]) {
    assert.ok(!isIP(bad), bad);
  }
  for (const ok of ['10.0.0.0/8', '0.0.0.0/0', '2001:db8::/32', '::/128']) assert.ok(isCIDR(ok), ok);
  for (const bad of ['10.0.0.0/33', '10.0.0.0/', '10.0.0.0', '::/129', '10.0.0.0/08'])
    assert.ok(!isCIDR(bad), bad);
});

test('label keys and values', () => {
  for (const ok of ['app', 'app.kubernetes.io/name', 'topology.istio.io/network', 'a_b.c-d']) {
    assert.equal(labelKeyProblem(ok), undefined, ok);
  }
  assert.match(labelKeyProblem('') ?? '', /must not be empty/);
  assert.match(labelKeyProblem('*') ?? '', /wildcard/);
  assert.match(labelKeyProblem('Bad_Prefix/x') ?? '', /prefix/);
  assert.match(labelKeyProblem('x'.repeat(64)) ?? '', /longer than 63/);
  for (const ok of ['', 'v1', 'a.b-c_d']) assert.equal(labelValueProblem(ok), undefined, ok);
  for (const bad of ['*', '-a', 'a b', 'x'.repeat(64)]) assert.ok(labelValueProblem(bad), bad);
});

test('IANA service names', () => {
  for (const ok of ['http', 'http-web', 'h2c']) assert.ok(isIanaSvcName(ok), ok);
  for (const bad of ['80', 'HTTP', 'a--b', 'sixteen-chars-xx', '-a']) assert.ok(!isIanaSvcName(bad), bad);
});
