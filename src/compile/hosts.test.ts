import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostMatches, outboundSni, parseOutboundSni, resolveHost, serviceDomains } from './hosts.ts';

test('resolveHost expands only dotless short names, relative to the namespace (as Istio does)', () => {
  const cases: [string, string, string][] = [
    ['reviews', 'default', 'reviews.default.svc.cluster.local'],
    ['Reviews', 'default', 'reviews.default.svc.cluster.local'],
    ['example.com', 'default', 'example.com'],
    ['reviews.prod', 'default', 'reviews.prod'],
    ['reviews.prod.svc.cluster.local', 'default', 'reviews.prod.svc.cluster.local'],
    ['api.example.com', 'default', 'api.example.com'],
    ['*.example.com', 'default', '*.example.com'],
    ['*', 'default', '*'],
  ];
  for (const [host, ns, want] of cases) assert.equal(resolveHost(host, ns), want, host);
});

test('hostMatches handles exact names and wildcards', () => {
  assert.ok(hostMatches('*', 'anything'));
  assert.ok(hostMatches('*.example.com', 'a.example.com'));
  assert.ok(!hostMatches('*.example.com', 'example.org'));
  assert.ok(!hostMatches('a.example.com', 'b.example.com'));
});

test('SNI round-trips the port, subset and host', () => {
  const sni = outboundSni(9080, 'v2', 'reviews.default.svc.cluster.local');
  assert.equal(sni, 'outbound_.9080_.v2_.reviews.default.svc.cluster.local');
  assert.deepEqual(parseOutboundSni(sni), {
    port: 9080,
    subset: 'v2',
    host: 'reviews.default.svc.cluster.local',
  });
  assert.deepEqual(parseOutboundSni(outboundSni(80, undefined, 'a.b.svc.cluster.local')), {
    port: 80,
    subset: '',
    host: 'a.b.svc.cluster.local',
  });
  assert.equal(parseOutboundSni('reviews.default'), undefined);
});

test('serviceDomains lists every name an app may use, with and without the port', () => {
  assert.deepEqual(serviceDomains('reviews.default.svc.cluster.local', 9080, 'default'), [
    'reviews.default.svc.cluster.local',
    'reviews.default.svc.cluster.local:9080',
    'reviews.default.svc',
    'reviews.default.svc:9080',
    'reviews.default',
    'reviews.default:9080',
    'reviews',
    'reviews:9080',
  ]);
});
