import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TrellisError } from './errors.ts';
import { isValidTrustDomain, parseSpiffeId, spiffeId } from './spiffe.ts';

test('spiffeId builds the mesh identity shape', () => {
  assert.equal(spiffeId('cluster.local', 'default', 'web'), 'spiffe://cluster.local/ns/default/sa/web');
  assert.equal(spiffeId('corp_x-1.example', 'ns.a', 'sa_B-2'), 'spiffe://corp_x-1.example/ns/ns.a/sa/sa_B-2');
});

test('spiffeId rejects what would not round-trip or could alias another identity', () => {
  const bad: [string, string, string][] = [
    ['Cluster.local', 'default', 'web'],
    ['cluster.local:8080', 'default', 'web'],
    ['', 'default', 'web'],
    ['cluster.local', '', 'web'],
    ['cluster.local', 'a/b', 'web'],
    ['cluster.local', '..', 'web'],
    ['cluster.local', 'default', '.'],
    ['cluster.local', 'default', 'web?x=1'],
    ['cluster.local', 'default', 'wéb'],
    ['cluster.local', 'default', 'x'.repeat(3000)],
  ];
  for (const [td, ns, sa] of bad) {
    assert.throws(
      () => spiffeId(td, ns, sa),
      (e: unknown) => e instanceof TrellisError && e.code === 'TRL_INVALID_ARGUMENT',
      `${td} ${ns} ${sa}`,
    );
  }
});

test('parseSpiffeId accepts exactly spiffe://<td>/ns/<ns>/sa/<sa>', () => {
  assert.deepEqual(parseSpiffeId('spiffe://cluster.local/ns/default/sa/web'), {
    trustDomain: 'cluster.local',
    namespace: 'default',
    serviceAccount: 'web',
  });
  for (const uri of [
    'spiffe://cluster.local/ns/default/sa/web/',
    'spiffe://cluster.local/ns/default/sa/web/extra',
    'spiffe://cluster.local/ns/default/sa/',
    'spiffe://cluster.local/ns//sa/web',
    'spiffe://cluster.local/sa/web/ns/default',
    'spiffe://cluster.local/ns/default/sa/web?x',
    'spiffe://cluster.local/ns/default/sa/web#f',
    'spiffe://Cluster.local/ns/default/sa/web',
    'spiffe://user@cluster.local/ns/default/sa/web',
    'spiffe://cluster.local:443/ns/default/sa/web',
    'spiffe://cluster.local/ns/../sa/web',
    'spiffe://cluster.local/ns/a%2Fb/sa/web',
    'SPIFFE://cluster.local/ns/default/sa/web',
    'https://cluster.local/ns/default/sa/web',
    ' spiffe://cluster.local/ns/default/sa/web',
    'spiffe://cluster.local/ns/default/sa/web\n',
    '',
  ]) {
    assert.equal(parseSpiffeId(uri), undefined, uri);
  }
});

test('spiffeId and parseSpiffeId round-trip', () => {
  const id = spiffeId('example.org', 'kube-system', 'coredns');
  const parsed = parseSpiffeId(id);
  assert.ok(parsed);
  assert.equal(spiffeId(parsed.trustDomain, parsed.namespace, parsed.serviceAccount), id);
});

test('isValidTrustDomain', () => {
  assert.equal(isValidTrustDomain('cluster.local'), true);
  assert.equal(isValidTrustDomain('a'.repeat(256)), false);
  assert.equal(isValidTrustDomain('has space'), false);
});
