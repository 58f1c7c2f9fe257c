import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Resource } from '../api/resource.ts';
import { compile } from './compile.ts';
import { customPolicyWarnings } from './ext-authz-warnings.ts';
import { buildMeshIndex } from './mesh-index.ts';
import type { GatewayListener, InboundListener, ProxyNode, ProxySnapshot } from './snapshot.ts';

const sidecar = (app: string, port = 8080): ProxyNode => ({
  id: `${app}-0`,
  role: 'sidecar',
  workload: app,
  namespace: 'default',
  serviceAccount: app,
  labels: { app },
  address: '10.0.0.1',
  inboundPort: 15006,
  ports: [{ name: 'http', port }],
  healthy: true,
});
const echo = sidecar('echo');
const authz = { ...sidecar('ext-authz', 9000), address: '10.0.0.2' };
const gateway: ProxyNode = {
  id: 'gw-0',
  role: 'gateway',
  workload: 'gw',
  namespace: 'default',
  serviceAccount: 'gw',
  labels: { istio: 'gw' },
  address: '10.0.0.3',
  ports: [],
  gatewayPorts: { '80': 8080 },
  healthy: true,
};

const service = (name: string, port: number, targetPort: number): Resource => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: { selector: { app: name }, ports: [{ name: 'http', port, targetPort }] },
});

const meshConfig = (providers: string): Resource => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'istio', namespace: 'istio-system' },
  spec: { data: { mesh: `extensionProviders:\n${providers}` } },
});

const PROVIDERS = `
- name: http
  envoyExtAuthzHttp:
    service: ext-authz.default.svc.cluster.local
    port: 8000
    headersToUpstreamOnAllow: [X-User]
- name: http-ns
  envoyExtAuthzHttp: {service: default/ext-authz.default.svc.cluster.local, port: 8000, timeout: 2s, failOpen: true, statusOnError: "503"}
- name: grpc-mesh
  envoyExtAuthzGrpc: {service: ext-authz.default.svc.cluster.local, port: 8000}
- name: grpc-local
  envoyExtAuthzGrpc: {service: authz.local, port: 9191, includeRequestBodyInCheck: {packAsBytes: true}}
- name: wrong-port
  envoyExtAuthzHttp: {service: ext-authz.default.svc.cluster.local, port: 1234}
- name: tracing
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
`;

const localAuthz: Resource = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'authz-local', namespace: 'default' },
  spec: {
    hosts: ['authz.local'],
    ports: [{ name: 'grpc', number: 9191, protocol: 'GRPC' }],
    resolution: 'STATIC',
    endpoints: [{ address: '127.0.0.1' }],
  },
};

const custom = (
  name: string,
  provider: string,
  selector: Record<string, string> = { app: 'echo' },
  dryRun = false,
): Resource => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: 'default', ...(dryRun && { annotations: { 'istio.io/dry-run': 'true' } }) },
  spec: { selector: { matchLabels: selector }, action: 'CUSTOM', provider: { name: provider }, rules: [{}] },
});

const BASE = [
  service('echo', 8080, 8080),
  service('ext-authz', 8000, 9000),
  meshConfig(PROVIDERS),
  localAuthz,
];

const snapshotOf = (node: ProxyNode, ...policies: Resource[]): ProxySnapshot =>
  compile(
    {
      revision: 1,
      resources: [...BASE, ...policies],
      proxies: [echo, authz, gateway],
      mesh: { trustDomain: 'cluster.local' },
    },
    node,
  );

const inbound = (s: ProxySnapshot) => s.listeners.find((l): l is InboundListener => l.type === 'inbound')!;

test('an HTTP provider on a mesh service: resolved with Istio defaults, its mesh cluster in the snapshot', () => {
  const s = snapshotOf(echo, custom('ext', 'http'));
  assert.deepEqual(inbound(s).authorization?.extAuthz, {
    name: 'http',
    protocol: 'HTTP',
    cluster: 'outbound|8000||ext-authz.default.svc.cluster.local',
    timeoutMs: 600_000,
    failOpen: false,
    statusOnError: 403,
    headersToUpstreamOnAllow: ['x-user'],
  });
  const c = s.clusters.find((x) => x.name === 'outbound|8000||ext-authz.default.svc.cluster.local');
  assert.equal(c?.tls.mode, 'ISTIO_MUTUAL');
  assert.deepEqual(
    c?.endpoints.map((e) => `${e.address}:${e.port}`),
    ['10.0.0.2:15006'],
  );
  const other = snapshotOf(echo, custom('ext', 'http-ns'));
  assert.deepEqual(
    (({ timeoutMs, failOpen, statusOnError }) => ({ timeoutMs, failOpen, statusOnError }))(
      inbound(other).authorization?.extAuthz as {
        timeoutMs: number;
        failOpen: boolean;
        statusOnError: number;
      },
    ),
    { timeoutMs: 2000, failOpen: true, statusOnError: 503 },
  );
});

test('a gRPC provider on a ServiceEntry: a plaintext cluster of its endpoints; through a sidecar it is refused', () => {
  const s = snapshotOf(echo, custom('ext', 'grpc-local'));
  const ext = inbound(s).authorization?.extAuthz;
  assert.equal(ext && 'protocol' in ext && ext.protocol, 'GRPC');
  assert.deepEqual(ext && 'includeRequestBody' in ext && ext.includeRequestBody, {
    maxRequestBytes: 4096,
    allowPartialMessage: false,
    packAsBytes: true,
  });
  const c = s.clusters.find((x) => x.name === 'outbound|9191||authz.local');
  assert.equal(c?.tls.mode, 'DISABLE');
  assert.equal(c?.origin, 'ServiceEntry default/authz-local');
  assert.deepEqual(c?.endpoints, [{ address: '127.0.0.1', port: 9191, healthy: true }]);
  const mesh = inbound(snapshotOf(echo, custom('ext', 'grpc-mesh'))).authorization?.extAuthz;
  assert.match((mesh as { error: string }).error, /mesh service: .*define its address with a ServiceEntry/);
});

test('a gateway asks the provider of its CUSTOM policies; the cluster is among its own', () => {
  const gw: Resource = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'Gateway',
    metadata: { name: 'gw', namespace: 'default' },
    spec: {
      selector: { istio: 'gw' },
      servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }],
    },
  };
  const s = snapshotOf(gateway, gw, custom('edge', 'grpc-local', { istio: 'gw' }));
  const l = s.listeners.find((x): x is GatewayListener => x.type === 'gateway')!;
  assert.equal((l.authorization!.extAuthz as { cluster: string }).cluster, 'outbound|9191||authz.local');
  assert.ok(s.clusters.some((c) => c.name === 'outbound|9191||authz.local'));
});

test('what CUSTOM policies cannot ask is an error the proxy denies with, and apply warns about', () => {
  const cases: [Resource[], RegExp][] = [
    [[custom('ext', 'nope')], /extension provider "nope" is not defined in mesh config/],
    [
      [custom('ext', 'tracing')],
      /"tracing" is a zipkin provider, not envoyExtAuthzHttp or envoyExtAuthzGrpc/,
    ],
    [
      [custom('ext', 'wrong-port')],
      /service ext-authz.default.svc.cluster.local has no port 1234 \(it has 8000\)/,
    ],
    [
      [custom('a', 'http'), custom('b', 'grpc-local')],
      /name 2 providers, grpc-local \(default\/b\) and http \(default\/a\): Istio allows one per workload/,
    ],
  ];
  for (const [policies, error] of cases) {
    const ext = inbound(snapshotOf(echo, ...policies)).authorization?.extAuthz;
    assert.match((ext as { error: string }).error, error);
  }
  const index = buildMeshIndex({
    revision: 1,
    resources: [
      ...BASE,
      custom('a', 'http'),
      custom('b', 'grpc-local'),
      custom('c', 'nope', { app: 'other' }, true),
    ],
    proxies: [echo, authz],
    mesh: { trustDomain: 'cluster.local' },
  });
  const warnings = customPolicyWarnings(index, [echo, authz]).map(
    (w) => `${w.resource} ${w.path}: ${w.message}`,
  );
  assert.equal(warnings.length, 3, warnings.join('\n'));
  assert.match(
    warnings[0],
    /^AuthorizationPolicy default\/c metadata.annotations.istio.io\/dry-run: .*dry run for ALLOW and DENY policies only/,
  );
  assert.match(
    warnings[1],
    /^AuthorizationPolicy default\/c spec.provider.name: extension provider "nope" is not defined/,
  );
  assert.match(warnings[2], /^proxy echo-0 : CUSTOM policies on this workload name 2 providers/);
});

test('dry run does not apply to CUSTOM: the policy is in the snapshot enforced', () => {
  const s = snapshotOf(echo, custom('ext', 'http', { app: 'echo' }, true));
  assert.equal(inbound(s).authorization?.custom?.[0].dryRun, undefined);
});
