import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AuthorizationPolicySpec } from '../api/kinds/index.ts';
import type { Resource } from '../api/resource.ts';
import { authorizationFor, principals } from './authorization.ts';
import { compile } from './compile.ts';
import { buildMeshIndex, type MeshConfig } from './mesh-index.ts';
import type {
  Authorization,
  AuthorizationPolicyRules,
  GatewayListener,
  InboundListener,
  ProxyNode,
} from './snapshot.ts';

const reviews: ProxyNode = {
  id: 'reviews-v1-0.default',
  role: 'sidecar',
  workload: 'reviews-v1',
  namespace: 'default',
  serviceAccount: 'reviews',
  labels: { app: 'reviews', version: 'v1' },
  address: '127.0.0.1',
  ports: [{ name: 'http', port: 9080 }],
  healthy: true,
};
const ingress: ProxyNode = {
  id: 'ingress-0.istio-system',
  role: 'gateway',
  workload: 'ingress',
  namespace: 'istio-system',
  serviceAccount: 'ingress',
  labels: { istio: 'ingressgateway' },
  address: '127.0.0.1',
  ports: [],
  gatewayPorts: { '80': 8080 },
  healthy: true,
};

const service: Resource = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080 }] },
};
const gateway: Resource = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'Gateway',
  metadata: { name: 'bookinfo-gateway', namespace: 'istio-system' },
  spec: {
    selector: { istio: 'ingressgateway' },
    servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }],
  },
};

function ap(
  ns: string,
  name: string,
  spec: AuthorizationPolicySpec,
  annotations?: Record<string, string>,
): Resource<AuthorizationPolicySpec> {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace: ns, ...(annotations && { annotations }) },
    spec,
  };
}

const MESH: MeshConfig = { trustDomain: 'cluster.local' };

function resolve(policies: Resource[], node: ProxyNode, mesh = MESH, gateways: string[] = []) {
  const index = buildMeshIndex({
    revision: 1,
    resources: [service, gateway, ...policies],
    proxies: [reviews, ingress],
    mesh,
  });
  return authorizationFor(index, node, gateways);
}

const names = (a: Authorization | undefined) =>
  Object.fromEntries(
    (Object.entries(a ?? {}).filter(([k]) => k !== 'extAuthz') as [string, AuthorizationPolicyRules[]][]).map(
      ([k, ps]) => [k, ps.map((p) => p.name)],
    ),
  );

const scoping: {
  name: string;
  policies: Resource[];
  node?: ProxyNode;
  gateways?: string[];
  want: Record<string, string[]>;
}[] = [
  { name: 'no policy: no section', policies: [], want: {} },
  {
    name: 'namespace-wide policy applies to the namespace only',
    policies: [ap('default', 'all', {}), ap('other', 'elsewhere', {})],
    want: { allow: ['default/all'] },
  },
  {
    name: 'selector: matching labels only',
    policies: [
      ap('default', 'v1', { selector: { matchLabels: { app: 'reviews', version: 'v1' } } }),
      ap('default', 'v2', { selector: { matchLabels: { app: 'reviews', version: 'v2' } } }),
      ap('other', 'v1-elsewhere', { selector: { matchLabels: { app: 'reviews' } } }),
    ],
    want: { allow: ['default/v1'] },
  },
  {
    name: 'root namespace: mesh-wide, with or without a selector, sidecars and gateways alike',
    policies: [
      ap('istio-system', 'mesh-deny', { action: 'DENY', rules: [{}] }),
      ap('istio-system', 'mesh-reviews', { selector: { matchLabels: { app: 'reviews' } } }),
    ],
    want: { deny: ['istio-system/mesh-deny'], allow: ['istio-system/mesh-reviews'] },
  },
  {
    name: 'the gateway gets the root-namespace policy, not the reviews selector',
    node: ingress,
    gateways: ['istio-system/bookinfo-gateway'],
    policies: [
      ap('istio-system', 'mesh-deny', { action: 'DENY', rules: [{}] }),
      ap('istio-system', 'mesh-reviews', { selector: { matchLabels: { app: 'reviews' } } }),
    ],
    want: { deny: ['istio-system/mesh-deny'] },
  },
  {
    name: 'targetRefs Service: the workloads behind it',
    policies: [
      ap('default', 'svc', { targetRefs: [{ kind: 'Service', name: 'reviews' }] }),
      ap('default', 'other-svc', { targetRefs: [{ kind: 'Service', name: 'ratings' }] }),
      ap('default', 'gw', { targetRefs: [{ kind: 'Gateway', name: 'bookinfo-gateway' }] }),
    ],
    want: { allow: ['default/svc'] },
  },
  {
    name: 'targetRefs Gateway: the listeners of that Gateway, in its namespace',
    node: ingress,
    gateways: ['istio-system/bookinfo-gateway'],
    policies: [
      ap('istio-system', 'gw', {
        targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'bookinfo-gateway' }],
      }),
      ap('istio-system', 'gw-deprecated', {
        action: 'AUDIT',
        rules: [{}],
        targetRef: { kind: 'Gateway', name: 'bookinfo-gateway' },
      }),
      ap('istio-system', 'other-gw', { targetRefs: [{ kind: 'Gateway', name: 'other' }] }),
      ap('default', 'same-name-other-ns', { targetRefs: [{ kind: 'Gateway', name: 'bookinfo-gateway' }] }),
      ap('istio-system', 'unsupported-kind', { targetRefs: [{ kind: 'GatewayClass', name: 'istio' }] }),
    ],
    want: { allow: ['istio-system/gw'], audit: ['istio-system/gw-deprecated'] },
  },
  {
    name: 'every action, each sorted by name',
    policies: [
      ap('default', 'z-allow', {}),
      ap('default', 'a-allow', { rules: [{}] }),
      ap('default', 'deny', { action: 'DENY', rules: [{}] }),
      ap('default', 'custom', { action: 'CUSTOM', provider: { name: 'opa' }, rules: [{}] }),
      ap('default', 'audit', { action: 'AUDIT', rules: [{}] }),
    ],
    want: {
      custom: ['default/custom'],
      deny: ['default/deny'],
      allow: ['default/a-allow', 'default/z-allow'],
      audit: ['default/audit'],
    },
  },
];

for (const c of scoping) {
  test(`authorization scoping: ${c.name}`, () => {
    const got = resolve(c.policies, c.node ?? reviews, MESH, c.gateways);
    assert.deepEqual(names(got), c.want);
    if (Object.keys(c.want).length === 0) assert.equal(got, undefined);
  });
}

test('authorization: rules are normalized for the proxy', () => {
  const got = resolve(
    [
      ap(
        'default',
        'p',
        {
          action: 'DENY',
          rules: [
            {
              from: [
                {
                  source: {
                    principals: ['cluster.local/ns/a/sa/b', '*/ns/c/sa/d', 'other.td/ns/e/sa/f', '*'],
                    notNamespaces: ['kube-*'],
                    serviceAccounts: ['x', 'prod/y'],
                    ipBlocks: ['10.0.0.0/8', '192.168.1.1', '::1'],
                    requestPrincipals: ['https://issuer/*'],
                  },
                },
              ],
              to: [
                {
                  operation: { hosts: ['Reviews.Default', 'REVIEWS:*'], ports: ['9080'], paths: ['/a/{*}'] },
                },
              ],
              when: [
                { key: 'request.headers[X-User]', values: ['alice'] },
                { key: 'source.principal', notValues: ['cluster.local/ns/a/sa/b'] },
                { key: 'destination.ip', values: ['127.0.0.1'] },
                { key: 'destination.port', values: ['09080'] },
                { key: 'request.auth.claims[realm][roles]', values: ['admin'] },
              ],
            },
            {},
          ],
        },
        { 'istio.io/dry-run': 'true' },
      ),
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'istio', namespace: 'istio-system' },
        spec: { data: { mesh: 'trustDomainAliases: [old.td]\n' } },
      },
    ],
    reviews,
    { trustDomain: 'example.org' },
  );
  assert.deepEqual(got, {
    deny: [
      {
        name: 'default/p',
        dryRun: true,
        rules: [
          {
            from: [
              {
                principals: [
                  'example.org/ns/a/sa/b',
                  'old.td/ns/a/sa/b',
                  '*/ns/c/sa/d',
                  'other.td/ns/e/sa/f',
                  '*',
                ],
                requestPrincipals: ['https://issuer/*'],
                notNamespaces: ['kube-*'],
                serviceAccounts: ['default/x', 'prod/y'],
                ipBlocks: ['10.0.0.0/8', '192.168.1.1/32', '::1/128'],
              },
            ],
            to: [{ hosts: ['reviews.default', 'reviews:*'], ports: [9080], paths: ['/a/{*}'] }],
            when: [
              { key: 'request.headers[x-user]', values: ['alice'] },
              { key: 'source.principal', notValues: ['example.org/ns/a/sa/b', 'old.td/ns/a/sa/b'] },
              { key: 'destination.ip', values: ['127.0.0.1/32'] },
              { key: 'destination.port', values: ['9080'] },
              { key: 'request.auth.claims[realm][roles]', values: ['admin'] },
            ],
          },
          {},
        ],
      },
    ],
  });
});

test('authorization: a principal in an alias or in cluster.local stands for every trust domain of the mesh', () => {
  const scope = { trustDomains: ['td2', 'td1'] };
  assert.deepEqual(principals(['td1/ns/a/sa/b'], scope), ['td2/ns/a/sa/b', 'td1/ns/a/sa/b']);
  assert.deepEqual(principals(['cluster.local/ns/a/*'], scope), ['td2/ns/a/*', 'td1/ns/a/*']);
  assert.deepEqual(principals(['td3/ns/a/sa/b', '*', 'td*'], scope), ['td3/ns/a/sa/b', '*', 'td*']);
});

test('authorization: compile puts the section on the inbound listener and on each gateway listener', () => {
  const input = {
    revision: 1,
    resources: [
      service,
      gateway,
      ap('default', 'deny-admin', {
        action: 'DENY',
        rules: [{ to: [{ operation: { paths: ['/admin'] } }] }],
      }),
      ap('istio-system', 'gw', { targetRefs: [{ kind: 'Gateway', name: 'bookinfo-gateway' }] }),
    ],
    proxies: [reviews, ingress],
    mesh: MESH,
  };
  const inbound = compile(input, reviews).listeners.find((l): l is InboundListener => l.type === 'inbound');
  assert.deepEqual(names(inbound?.authorization), { deny: ['default/deny-admin'] });
  const gw = compile(input, ingress).listeners.find((l): l is GatewayListener => l.type === 'gateway');
  assert.deepEqual(names(gw?.authorization), { allow: ['istio-system/gw'] });
  const without = compile({ ...input, resources: [service, gateway] }, reviews);
  const plain = without.listeners.find((l): l is InboundListener => l.type === 'inbound');
  assert.equal(plain && 'authorization' in plain, false, 'no policy: the listener has no section');
});
