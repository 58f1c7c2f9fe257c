import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiVersionOf, kindFor, kinds, lookupKind, manifestOf } from './index.ts';

test('every kind has a unique name, plural and short names', () => {
  const names = kinds.flatMap((k) => [k.kind.toLowerCase(), k.plural, ...k.shortNames]);
  assert.equal(new Set(names).size, names.length);
});

test('lookupKind resolves kinds, plurals, short names and group-qualified names', () => {
  const cases: [string, string | undefined][] = [
    ['VirtualService', 'VirtualService'],
    ['virtualservice', 'VirtualService'],
    ['virtualservices', 'VirtualService'],
    ['vs', 'VirtualService'],
    ['VS', 'VirtualService'],
    ['virtualservices.networking.istio.io', 'VirtualService'],
    ['dr', 'DestinationRule'],
    ['gw', 'Gateway'],
    ['se', 'ServiceEntry'],
    ['serviceentries', 'ServiceEntry'],
    ['pa', 'PeerAuthentication'],
    ['ra', 'RequestAuthentication'],
    ['ap', 'AuthorizationPolicy'],
    ['authorizationpolicies', 'AuthorizationPolicy'],
    ['svc', 'Service'],
    ['services', 'Service'],
    ['wl', 'Workload'],
    ['workloads.trellis.dev', 'Workload'],
    ['vs.security.istio.io', undefined],
    ['sidecar', 'Sidecar'],
    ['sidecars.networking.istio.io', 'Sidecar'],
    ['workloadgroup', undefined],
    ['', undefined],
  ];
  for (const [name, want] of cases) assert.equal(lookupKind(name)?.kind, want, name);
});

test('kindFor matches group, version and kind exactly', () => {
  assert.equal(kindFor('networking.istio.io/v1alpha3', 'Gateway')?.kind, 'Gateway');
  assert.equal(kindFor('security.istio.io/v1beta1', 'AuthorizationPolicy')?.kind, 'AuthorizationPolicy');
  assert.equal(kindFor('v1', 'Service')?.kind, 'Service');
  assert.equal(kindFor('trellis.dev/v1alpha1', 'Workload')?.kind, 'Workload');
  assert.equal(kindFor('networking.istio.io/v2', 'Gateway'), undefined);
  assert.equal(kindFor('security.istio.io/v1', 'Gateway'), undefined);
  assert.equal(kindFor('networking.istio.io/v1', 'gateway'), undefined);
  assert.equal(kindFor('apps/v1', 'Service'), undefined);
});

test('apiVersionOf names the storage version first', () => {
  assert.equal(apiVersionOf(lookupKind('vs')!), 'networking.istio.io/v1');
  assert.equal(apiVersionOf(lookupKind('svc')!), 'v1');
});

test('manifestOf puts a ConfigMap back as Kubernetes writes it, and leaves other kinds alone', () => {
  const cm = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'istio', namespace: 'istio-system' },
    spec: { data: { mesh: 'rootNamespace: istio-system\n' } },
  };
  assert.deepEqual(manifestOf(cm), {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: cm.metadata,
    data: cm.spec.data,
  });
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'a', namespace: 'default' }, spec: {} };
  assert.equal(manifestOf(svc), svc);
  assert.equal(lookupKind('cm')?.kind, 'ConfigMap');
});
