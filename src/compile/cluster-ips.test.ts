import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterIps } from './cluster-ips.ts';

test('a Service keeps its own clusterIP; others get stable VIPs from 10.96.0.0/12; headless gets none', () => {
  const services = [
    { fqdn: 'reviews.default.svc.cluster.local' },
    { fqdn: 'ratings.default.svc.cluster.local', clusterIP: '10.0.0.7' },
    { fqdn: 'db.default.svc.cluster.local', clusterIP: 'None' },
  ];
  const a = clusterIps(services);
  assert.equal(a.get('ratings.default.svc.cluster.local'), '10.0.0.7');
  assert.equal(a.has('db.default.svc.cluster.local'), false);
  const vip = a.get('reviews.default.svc.cluster.local')!;
  const [o1, o2] = vip.split('.').map(Number);
  assert.equal(o1, 10);
  assert.ok(o2 >= 96 && o2 < 112, vip);
  // Order of input does not matter: the runtime and compile agree.
  assert.deepEqual(clusterIps([...services].reverse()), a);
});

test('colliding VIPs are settled in FQDN order, never shared', () => {
  const many = Array.from({ length: 3000 }, (_, i) => ({ fqdn: `s${i}.default.svc.cluster.local` }));
  const ips = clusterIps(many);
  assert.equal(new Set(ips.values()).size, 3000);
});
