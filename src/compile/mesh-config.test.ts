import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Resource } from '../api/resource.ts';
import { compile } from './compile.ts';
import { DEFAULT_MESH_CONFIG, resolveMeshConfig } from './mesh-config.ts';
import type { InboundListener, ProxyNode } from './snapshot.ts';

const configMap = (mesh: string | undefined, name = 'istio', namespace = 'istio-system'): Resource => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace },
  spec: mesh === undefined ? {} : { data: { mesh } },
});

const node: ProxyNode = {
  id: 'reviews-0.default',
  role: 'sidecar',
  workload: 'reviews',
  namespace: 'default',
  serviceAccount: 'reviews',
  labels: { app: 'reviews' },
  address: '127.0.0.1',
  inboundPort: 20001,
  ports: [{ name: 'http', port: 9080 }],
  healthy: true,
};

const compileWith = (...resources: Resource[]) =>
  compile({ revision: 1, resources, proxies: [node], mesh: { trustDomain: 'cluster.local' } }, node);

test('mesh config defaults: no ConfigMap, no mesh key, an empty document, DEFAULT', () => {
  assert.deepEqual(resolveMeshConfig(undefined), DEFAULT_MESH_CONFIG);
  assert.deepEqual(resolveMeshConfig(configMap(undefined)), DEFAULT_MESH_CONFIG);
  assert.deepEqual(resolveMeshConfig(configMap('')), DEFAULT_MESH_CONFIG);
  assert.equal(
    resolveMeshConfig(configMap('outboundTrafficPolicy: {mode: ALLOW_ANY}')).outboundTrafficPolicy,
    'ALLOW_ANY',
  );
  assert.deepEqual(resolveMeshConfig(configMap('pathNormalization: {normalization: DEFAULT}')), {
    rootNamespace: 'istio-system',
    pathNormalization: 'BASE',
    trustDomainAliases: [],
    extensionProviders: [],
    h2UpgradePolicy: 'DO_NOT_UPGRADE',
    connectTimeoutMs: 10_000,
    outboundTrafficPolicy: 'REGISTRY_ONLY',
    defaultExportTo: DEFAULT_MESH_CONFIG.defaultExportTo,
  });
  assert.deepEqual(
    resolveMeshConfig(
      configMap(
        'defaultVirtualServiceExportTo: ["."]\ndefaultServiceExportTo: ["~"]\ndefaultDestinationRuleExportTo: []',
      ),
    ).defaultExportTo,
    { service: ['~'], virtualService: ['.'], destinationRule: ['*'] },
  );
  assert.deepEqual(
    resolveMeshConfig(
      configMap(
        'rootNamespace: mesh-root\npathNormalization:\n  normalization: NONE\ntrustDomainAliases: [old.td]\n',
      ),
    ),
    {
      rootNamespace: 'mesh-root',
      pathNormalization: 'NONE',
      trustDomainAliases: ['old.td'],
      extensionProviders: [],
      h2UpgradePolicy: 'DO_NOT_UPGRADE',
      connectTimeoutMs: 10_000,
      outboundTrafficPolicy: 'REGISTRY_ONLY',
      defaultExportTo: DEFAULT_MESH_CONFIG.defaultExportTo,
    },
  );
});

test('the normalization mode reaches every proxy in its snapshot; the default leaves it out', () => {
  assert.equal(compileWith().http, undefined);
  assert.equal(compileWith(configMap('pathNormalization: {normalization: BASE}')).http, undefined);
  assert.deepEqual(compileWith(configMap('pathNormalization: {normalization: MERGE_SLASHES}')).http, {
    pathNormalization: 'MERGE_SLASHES',
  });
  // Only the istio ConfigMap of istio-system is mesh config.
  const elsewhere = configMap('pathNormalization: {normalization: NONE}', 'istio', 'default');
  const otherName = configMap('pathNormalization: {normalization: NONE}', 'istio-sidecar-injector');
  assert.equal(compileWith(elsewhere, otherName).http, undefined);
  // A different mode is a different snapshot.
  assert.notEqual(
    compileWith(configMap('pathNormalization: {normalization: NONE}')).version,
    compileWith().version,
  );
});

test('rootNamespace moves where mesh-wide PeerAuthentication lives', () => {
  const permissive = (namespace: string): Resource => ({
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: { name: 'default', namespace },
    spec: { mtls: { mode: 'PERMISSIVE' } },
  });
  const inbound = (...r: Resource[]) =>
    compileWith(...r).listeners.find((l): l is InboundListener => l.type === 'inbound')!.mtls;
  assert.equal(inbound(permissive('istio-system')), 'PERMISSIVE');
  assert.equal(inbound(permissive('mesh-root')), 'STRICT');
  const moved = configMap('rootNamespace: mesh-root');
  assert.equal(inbound(moved, permissive('mesh-root')), 'PERMISSIVE');
  assert.equal(inbound(moved, permissive('istio-system')), 'STRICT');
});
