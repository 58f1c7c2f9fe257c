// VirtualService tcp[] and tls[] → a service port's L4 routing, as table tests: Istio YAML in, the
// L4 routing the client sidecar gets for the port out.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeResources } from '../../test/support/bookinfo-mesh.ts';
import { compile } from './compile.ts';
import type { L4Routing, ProxyNode, VirtualHost } from './snapshot.ts';

const node = (id: string, labels: Record<string, string>, ports: number[], ns = 'default'): ProxyNode => ({
  id: `${id}.${ns}`,
  role: 'sidecar',
  workload: id,
  namespace: ns,
  serviceAccount: id,
  labels,
  address: '127.0.0.1',
  inboundPort: 15000 + ports[0],
  ports: ports.map((port) => ({ port })),
  healthy: true,
});

const CLIENT = node('client', { app: 'client' }, [1]);
const PROXIES = [
  CLIENT,
  node('other', { app: 'other' }, [2], 'other'),
  node('echo-v1', { app: 'echo', version: 'v1' }, [9000, 9443, 9100]),
  node('echo-v2', { app: 'echo', version: 'v2' }, [9000, 9443, 9100]),
];

const SERVICE = `apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports:
  - {name: tcp-echo, port: 9000}
  - {name: https, port: 443, targetPort: 9443}
  - {name: web, port: 9100}
  - {name: http, port: 80, targetPort: 9100}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`;

function hostFor(yaml: string, port: number, client = CLIENT): VirtualHost {
  const resources = decodeResources(SERVICE + (yaml ? `---\n${yaml}` : ''), 'test.yaml');
  const s = compile(
    { revision: 1, resources, proxies: PROXIES, mesh: { trustDomain: 'cluster.local' } },
    client,
  );
  const vh = s.routeTables[0].virtualHosts.find((v) => v.name === `echo.default.svc.cluster.local:${port}`);
  assert.ok(vh, `no virtual host for port ${port}`);
  return vh;
}

const def = (port: number, origin = 'Service default/echo (no VirtualService)') => ({
  name: 'default',
  origin,
  matches: [],
  clusters: [{ cluster: `outbound|${port}||echo.default.svc.cluster.local`, weight: 100 }],
});
const NO_TCP = 'Service default/echo (no matching tcp route)';

describe('compile: protocol selection and L4 routing per service port', () => {
  const cases: {
    name: string;
    yaml?: string;
    port: number;
    client?: ProxyNode;
    l4: L4Routing | undefined;
    routes?: number;
  }[] = [
    { name: 'an http port has no L4 routing', port: 80, l4: undefined, routes: 1 },
    {
      name: 'a tcp port without a VirtualService goes to its service',
      port: 9000,
      l4: { protocol: 'TCP', tcp: [def(9000)] },
      routes: 0,
    },
    {
      name: 'an https port is TLS, proxied as TCP without tls routes',
      port: 443,
      l4: { protocol: 'TLS', tcp: [def(443)] },
      routes: 0,
    },
    {
      name: 'a port that names no protocol is sniffed: HTTP routes and TCP',
      port: 9100,
      l4: { protocol: 'AUTO', tcp: [def(9100)] },
      routes: 1,
    },
    {
      name: 'tcp routes: weighted subsets; a catch-all ends the list',
      port: 9000,
      yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  tcp:
  - match: [{port: 9000}]
    route:
    - {destination: {host: echo, subset: v1}, weight: 80}
    - {destination: {host: echo, subset: v2}, weight: 20}
  - route: [{destination: {host: echo, subset: v2}}]
`,
      l4: {
        protocol: 'TCP',
        tcp: [
          {
            name: 'default/echo#tcp0',
            origin: 'VirtualService default/echo tcp[0]',
            matches: [],
            clusters: [
              { cluster: 'outbound|9000|v1|echo.default.svc.cluster.local', weight: 80 },
              { cluster: 'outbound|9000|v2|echo.default.svc.cluster.local', weight: 20 },
            ],
          },
        ],
      },
    },
    {
      name: 'tcp routes: out-of-scope matches drop the rule; subnets stay for the proxy; the service is last',
      port: 9000,
      yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  tcp:
  - match: [{port: 1234}, {sourceLabels: {app: nobody}}, {sourceNamespace: other}, {gateways: [gw]}]
    route: [{destination: {host: echo, subset: v1}}]
  - match: [{destinationSubnets: [10.0.0.0/8], sourceLabels: {app: client}}]
    route: [{destination: {host: echo, subset: v2, port: {number: 9000}}}]
`,
      l4: {
        protocol: 'TCP',
        tcp: [
          {
            name: 'default/echo#tcp1',
            origin: 'VirtualService default/echo tcp[1]',
            matches: [{ destinationSubnets: ['10.0.0.0/8'] }],
            clusters: [{ cluster: 'outbound|9000|v2|echo.default.svc.cluster.local', weight: 100 }],
          },
          def(9000, NO_TCP),
        ],
      },
    },
    {
      name: 'sourceNamespace picks the calling proxy',
      port: 9000,
      client: PROXIES[1],
      yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.default.svc.cluster.local]
  tcp:
  - match: [{sourceNamespace: other}]
    route: [{destination: {host: echo.default.svc.cluster.local, subset: v2}}]
`,
      l4: {
        protocol: 'TCP',
        tcp: [
          {
            name: 'default/echo#tcp0',
            origin: 'VirtualService default/echo tcp[0]',
            matches: [],
            clusters: [{ cluster: 'outbound|9000|v2|echo.default.svc.cluster.local', weight: 100 }],
          },
        ],
      },
    },
    {
      name: 'tls routes by SNI on a TLS port: no fallback once one applies',
      port: 443,
      yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo, "*.echo.example"]
  tls:
  - match: [{sniHosts: [V1.echo.example], port: 443}]
    route: [{destination: {host: echo, subset: v1}}]
  - match: [{sniHosts: ["*.echo.example"], destinationSubnets: [127.0.0.1/32]}]
    route: [{destination: {host: echo, subset: v2}}]
  tcp:
  - route: [{destination: {host: echo, subset: v2}}]
`,
      l4: {
        protocol: 'TLS',
        tls: [
          {
            name: 'default/echo#tls0',
            origin: 'VirtualService default/echo tls[0]',
            matches: [{ sniHosts: ['v1.echo.example'] }],
            clusters: [{ cluster: 'outbound|443|v1|echo.default.svc.cluster.local', weight: 100 }],
          },
          {
            name: 'default/echo#tls1',
            origin: 'VirtualService default/echo tls[1]',
            matches: [{ sniHosts: ['*.echo.example'], destinationSubnets: ['127.0.0.1/32'] }],
            clusters: [{ cluster: 'outbound|443|v2|echo.default.svc.cluster.local', weight: 100 }],
          },
        ],
        tcp: [],
      },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const vh = hostFor(c.yaml ?? '', c.port, c.client);
      assert.deepEqual(vh.l4, c.l4);
      if (c.routes !== undefined) assert.equal(vh.routes.length, c.routes);
    });
  }
});

test('DestinationRule connectionPool.tcp reaches the TCP cluster, idleTimeout included', () => {
  const resources = decodeResources(
    `${SERVICE.replace(
      'subsets:',
      `trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 7, connectTimeout: 250ms, idleTimeout: 2s, maxConnectionDuration: 1m, tcpKeepalive: {time: 30s}}
  subsets:`,
    )}`,
    'test.yaml',
  );
  const s = compile(
    { revision: 1, resources, proxies: PROXIES, mesh: { trustDomain: 'cluster.local' } },
    CLIENT,
  );
  const c = s.clusters.find((x) => x.name === 'outbound|9000||echo.default.svc.cluster.local');
  assert.deepEqual(c?.connectionPool, {
    maxConnections: 7,
    connectTimeoutMs: 250,
    tcpKeepalive: { timeMs: 30_000 },
    maxConnectionDurationMs: 60_000,
    tcpIdleTimeoutMs: 2000,
  });
});
