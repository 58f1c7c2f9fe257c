// The push encoding of what proxies share: the shared part of a view is encoded once, and the
// message parses to exactly the snapshot compile assembled.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Resource } from '../api/resource.ts';
import { assembleSnapshot, compileParts } from '../compile/compile.ts';
import { buildMeshIndex, type CompileInput } from '../compile/mesh-index.ts';
import type { ProxyNode } from '../compile/snapshot.ts';
import { encodeSnapshotMessage, sharedConfigJson } from './encode.ts';

const mesh = { trustDomain: 'cluster.local' };

function svc(name: string, ns: string): Resource {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns },
    spec: { selector: { app: name }, ports: [{ name: 'http', port: 9080, targetPort: 9080 }] },
  };
}

function vs(name: string, ns: string, spec: unknown): Resource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace: ns, creationTimestamp: '2026-01-01T00:00:00Z' },
    spec,
  };
}

function node(app: string, ns: string, replica: number, extra: Partial<ProxyNode> = {}): ProxyNode {
  return {
    id: `${app}-v1-${replica}.${ns}`,
    role: 'sidecar',
    workload: `${app}-v1`,
    namespace: ns,
    serviceAccount: app,
    labels: { app, version: 'v1' },
    address: '127.0.0.1',
    inboundPort: 20000 + replica,
    ports: [{ name: 'http', port: 9080 }],
    healthy: true,
    ...extra,
  };
}

const gatewayNode: ProxyNode = {
  id: 'gw-0.edge',
  role: 'gateway',
  workload: 'gw',
  namespace: 'edge',
  serviceAccount: 'gw',
  labels: { istio: 'gw' },
  address: '127.0.0.1',
  ports: [],
  healthy: true,
};

const services = [svc('a', 'one'), svc('b', 'one'), svc('c', 'two'), svc('d', 'three')];
const proxies = [
  node('a', 'one', 0),
  node('a', 'one', 1),
  node('a', 'one', 2),
  node('b', 'one', 0),
  node('c', 'two', 0),
  node('d', 'three', 0),
  gatewayNode,
];
const routing = [
  vs('a', 'one', { hosts: ['a'], http: [{ timeout: '2s', route: [{ destination: { host: 'a' } }] }] }),
  {
    apiVersion: 'networking.istio.io/v1',
    kind: 'Gateway',
    metadata: { name: 'edge', namespace: 'edge' },
    spec: {
      selector: { istio: 'gw' },
      servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }],
    },
  },
  vs('edge', 'edge', {
    hosts: ['*'],
    gateways: ['edge'],
    http: [{ route: [{ destination: { host: 'a.one.svc.cluster.local' } }] }],
  }),
];

function input(extra: Partial<CompileInput> = {}): CompileInput {
  return { revision: 3, resources: [...services, ...routing], proxies, mesh, ...extra };
}

const bytes = (chunks: Uint8Array[]) => Buffer.concat(chunks).toString('utf8');

describe('push: encoding', () => {
  test('the shared JSON is JSON.stringify of the shared values', () => {
    const index = buildMeshIndex(input());
    for (const p of [proxies[0], proxies[4], gatewayNode]) {
      const { shared } = compileParts(index, p);
      const json = sharedConfigJson(shared);
      assert.equal(json.routeTables, JSON.stringify(shared.routeTables));
      assert.equal(json.clusters, JSON.stringify(shared.clusters));
    }
  });

  test('a snapshot message parses to the assembled snapshot; proxies of a view send the same shared bytes', () => {
    const index = buildMeshIndex(input());
    for (const p of proxies) {
      const parts = compileParts(index, p);
      const text = bytes(encodeSnapshotMessage(parts));
      assert.ok(text.endsWith('}\n') && text.indexOf('\n') === text.length - 1, 'one NDJSON line');
      const expected = JSON.parse(JSON.stringify({ type: 'snapshot', snapshot: assembleSnapshot(parts) }));
      assert.deepEqual(JSON.parse(text), expected);
    }
    const [x, y] = [
      encodeSnapshotMessage(compileParts(index, proxies[0])),
      encodeSnapshotMessage(compileParts(index, proxies[1])),
    ];
    assert.equal(x[1], y[1], 'the same byte array, not a copy');
    assert.notDeepEqual(x[0], y[0]);
  });

  test('a snapshot without shared clusters still encodes valid JSON', () => {
    // No services: the sidecar has only its inbound cluster, the shared cluster list is empty.
    const lonely = node('z', 'one', 0);
    const parts = compileParts(
      buildMeshIndex({ revision: 1, resources: [], proxies: [lonely], mesh }),
      lonely,
    );
    assert.equal(parts.shared.clusters.length, 0);
    const expected = JSON.parse(JSON.stringify(assembleSnapshot(parts)));
    assert.deepEqual(JSON.parse(bytes(encodeSnapshotMessage(parts))).snapshot, expected);
  });
});
