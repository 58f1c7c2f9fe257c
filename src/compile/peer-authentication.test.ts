import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PeerAuthenticationSpec } from '../api/kinds/index.ts';
import type { Resource } from '../api/resource.ts';
import { inboundMtls } from './peer-authentication.ts';
import type { ProxyNode } from './snapshot.ts';

const node: ProxyNode = {
  id: 'reviews-v1-0.default',
  role: 'sidecar',
  workload: 'reviews-v1',
  namespace: 'default',
  serviceAccount: 'reviews',
  labels: { app: 'reviews', version: 'v1' },
  address: '127.0.0.1',
  ports: [
    { name: 'http', port: 9080, protocol: 'HTTP' },
    { name: 'admin', port: 9090, protocol: 'HTTP' },
  ],
  healthy: true,
};

let age = 0;
function pa(
  namespace: string,
  spec: PeerAuthenticationSpec,
  name = `pa${age}`,
): Resource<PeerAuthenticationSpec> {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: {
      name,
      namespace,
      creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, age++)).toISOString(),
    },
    spec,
  };
}
const sel = (labels: Record<string, string>) => ({ matchLabels: labels });

const cases: {
  name: string;
  policies: Resource<PeerAuthenticationSpec>[];
  want: ReturnType<typeof inboundMtls>;
}[] = [
  { name: 'no policy: STRICT (Trellis default)', policies: [], want: { mtls: 'STRICT' } },
  {
    name: 'mesh-wide PERMISSIVE in the root namespace',
    policies: [pa('istio-system', { mtls: { mode: 'PERMISSIVE' } })],
    want: { mtls: 'PERMISSIVE' },
  },
  {
    name: 'a selector-less policy in another namespace does not apply',
    policies: [pa('other', { mtls: { mode: 'PERMISSIVE' } })],
    want: { mtls: 'STRICT' },
  },
  {
    name: 'namespace beats mesh',
    policies: [
      pa('istio-system', { mtls: { mode: 'PERMISSIVE' } }),
      pa('default', { mtls: { mode: 'STRICT' } }),
    ],
    want: { mtls: 'STRICT' },
  },
  {
    name: 'workload beats namespace',
    policies: [
      pa('default', { mtls: { mode: 'STRICT' } }),
      pa('default', { selector: sel({ app: 'reviews' }), mtls: { mode: 'PERMISSIVE' } }),
    ],
    want: { mtls: 'PERMISSIVE' },
  },
  {
    name: 'a workload policy that selects other labels does not apply',
    policies: [pa('default', { selector: sel({ app: 'ratings' }), mtls: { mode: 'PERMISSIVE' } })],
    want: { mtls: 'STRICT' },
  },
  {
    name: 'UNSET inherits from the namespace, then the mesh',
    policies: [
      pa('istio-system', { mtls: { mode: 'PERMISSIVE' } }),
      pa('default', { mtls: { mode: 'UNSET' } }),
      pa('default', { selector: sel({ app: 'reviews' }) }),
    ],
    want: { mtls: 'PERMISSIVE' },
  },
  {
    name: 'the oldest policy of a level wins',
    policies: [
      pa('default', { selector: sel({ app: 'reviews' }), mtls: { mode: 'STRICT' } }),
      pa('default', { selector: sel({ version: 'v1' }), mtls: { mode: 'PERMISSIVE' } }),
    ],
    want: { mtls: 'STRICT' },
  },
  {
    name: 'DISABLE acts as PERMISSIVE',
    policies: [pa('default', { mtls: { mode: 'DISABLE' } })],
    want: { mtls: 'PERMISSIVE' },
  },
  {
    name: 'port level: a workload port relaxed, unknown ports and same-as-workload modes dropped',
    policies: [
      pa('default', {
        selector: sel({ app: 'reviews' }),
        mtls: { mode: 'STRICT' },
        portLevelMtls: {
          '9090': { mode: 'PERMISSIVE' },
          '9080': { mode: 'STRICT' },
          '7000': { mode: 'PERMISSIVE' },
        },
      }),
    ],
    want: { mtls: 'STRICT', portMtls: { '9090': 'PERMISSIVE' } },
  },
  {
    name: 'port level STRICT under an inherited PERMISSIVE',
    policies: [
      pa('istio-system', { mtls: { mode: 'PERMISSIVE' } }),
      pa('default', { selector: sel({ app: 'reviews' }), portLevelMtls: { '9080': { mode: 'STRICT' } } }),
    ],
    want: { mtls: 'PERMISSIVE', portMtls: { '9080': 'STRICT' } },
  },
];

for (const c of cases) {
  test(`inboundMtls: ${c.name}`, () => {
    assert.deepEqual(inboundMtls(c.policies, node), c.want);
  });
}
