import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Resource } from '../api/resource.ts';
import { compile } from './compile.ts';
import type { Credential } from './mesh-index.ts';
import type { GatewayListener, ProxyNode, ProxySnapshot } from './snapshot.ts';

const gateway: ProxyNode = {
  id: 'gw-0.istio-system',
  role: 'gateway',
  workload: 'istio-ingressgateway',
  namespace: 'istio-system',
  serviceAccount: 'gw',
  labels: { istio: 'ingressgateway' },
  address: '127.0.0.1',
  ports: [
    { name: 'http2', port: 8080 },
    { name: 'https', port: 8443 },
  ],
  healthy: true,
};

function res(apiVersion: string, kind: string, name: string, spec: unknown, ns = 'default'): Resource {
  return {
    apiVersion,
    kind,
    metadata: { name, namespace: ns, creationTimestamp: '2026-01-01T00:00:00Z' },
    spec,
  };
}

const ingressService = res(
  'v1',
  'Service',
  'istio-ingressgateway',
  {
    selector: { istio: 'ingressgateway' },
    ports: [
      { name: 'http2', port: 80, targetPort: 8080 },
      { name: 'https', port: 443, targetPort: 'https' },
    ],
  },
  'istio-system',
);

const gw = (servers: unknown[]) =>
  res('networking.istio.io/v1', 'Gateway', 'edge', { selector: { istio: 'ingressgateway' }, servers });
const vs = (hosts: string[]) =>
  res('networking.istio.io/v1', 'VirtualService', hosts[0].replace('*', 'any'), {
    hosts,
    gateways: ['edge'],
    http: [{ directResponse: { status: 200 } }],
  });

function run(resources: Resource[], credentials = new Map<string, Credential>()): ProxySnapshot {
  return compile(
    {
      revision: 1,
      resources: [ingressService, ...resources],
      proxies: [gateway],
      mesh: { trustDomain: 'cluster.local' },
      credentials,
    },
    gateway,
  );
}

const listeners = (s: ProxySnapshot) => s.listeners as GatewayListener[];

describe('compile: gateway ports and HTTPS servers', () => {
  test("a server port that is a port of the gateway's Service listens on its targetPort, by number or name", () => {
    const s = run([
      gw([
        { port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] },
        {
          port: { number: 443, name: 'https', protocol: 'HTTPS' },
          hosts: ['*'],
          tls: { mode: 'SIMPLE', credentialName: 'edge' },
        },
        { port: { number: 9090, name: 'http-raw', protocol: 'HTTP2' }, hosts: ['*'] },
      ]),
    ]);
    assert.deepEqual(
      listeners(s).map((l) => [l.name, l.protocol, l.routeTable]),
      [
        ['0.0.0.0_8080', 'HTTP', 'http.80'],
        ['0.0.0.0_8443', 'HTTPS', 'https.443.https.edge.default'],
        ['0.0.0.0_9090', 'HTTP', 'http.9090'],
      ],
    );
  });

  test('HTTPS servers: SNI names, their own route tables, credentials of the gateway namespace, TLS settings', () => {
    const credentials = new Map<string, Credential>([
      ['istio-system/b', { certificateChain: 'B-CHAIN', privateKey: 'B-KEY' }],
      ['istio-system/b-cacert', { caCertificates: 'B-CA' }],
      ['default/b', { certificateChain: 'WRONG-NAMESPACE' }],
    ]);
    const s = run(
      [
        gw([
          {
            port: { number: 443, name: 'https-a', protocol: 'HTTPS' },
            hosts: ['prod/A.example.com', '*.a.example.com'],
            tls: {
              mode: 'SIMPLE',
              serverCertificate: '/a.crt',
              privateKey: '/a.key',
              minProtocolVersion: 'TLSV1_3',
              cipherSuites: ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384'],
            },
          },
          {
            port: { number: 443, name: 'https-b', protocol: 'HTTPS' },
            hosts: ['b.example.com'],
            tls: { mode: 'MUTUAL', credentialName: 'b', verifyCertificateHash: ['AB:CD'.padEnd(95, ':EF')] },
          },
          {
            port: { number: 443, name: 'https-pass', protocol: 'HTTPS' },
            hosts: ['c.example.com'],
            tls: { mode: 'PASSTHROUGH' },
          },
        ]),
        vs(['a.example.com']),
        vs(['b.example.com']),
      ],
      credentials,
    );
    const [l] = listeners(s);
    assert.equal(l.protocol, 'HTTPS');
    // PASSTHROUGH is not terminated (warned at apply): it makes no server here.
    assert.deepEqual(
      l.tls?.map((t) => t.name),
      ['https.443.https-a.edge.default', 'https.443.https-b.edge.default'],
    );
    const [a, b] = l.tls!;
    assert.deepEqual(a.serverNames, ['a.example.com', '*.a.example.com']);
    assert.deepEqual([a.minVersion, a.maxVersion], ['TLSv1.3', 'TLSv1.3']);
    assert.equal(a.ciphers, 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384');
    assert.equal(a.caCredential, undefined);
    assert.deepEqual([b.minVersion, b.maxVersion], ['TLSv1.2', 'TLSv1.3']);
    assert.deepEqual(b.credentials, [{ name: 'b', certificateChain: 'B-CHAIN', privateKey: 'B-KEY' }]);
    assert.deepEqual(b.caCredential, { name: 'b-cacert', caCertificates: 'B-CA' });
    assert.equal(b.certificateHashes?.[0].length, 64);
    // Each server routes only the hosts it admits.
    const hostsOf = (table: string) =>
      s.routeTables.find((t) => t.name === table)?.virtualHosts.map((v) => v.name);
    assert.deepEqual(hostsOf(a.routeTable), ['a.example.com:443']);
    assert.deepEqual(hostsOf(b.routeTable), ['b.example.com:443']);
  });

  test('httpsRedirect: the hosts of the server answer a 301 to https, routed or not', () => {
    const s = run([
      gw([
        {
          port: { number: 80, name: 'http', protocol: 'HTTP' },
          hosts: ['a.example.com', 'b.example.com'],
          tls: { httpsRedirect: true },
        },
        { port: { number: 80, name: 'http-plain', protocol: 'HTTP' }, hosts: ['c.example.com'] },
      ]),
      vs(['a.example.com']),
      vs(['c.example.com']),
    ]);
    const table = s.routeTables.find((t) => t.name === 'http.80')!;
    const action = (host: string) =>
      table.virtualHosts.find((v) => v.name === `${host}:80`)?.routes[0]?.action;
    const redirect = { type: 'redirect', status: 301, scheme: 'https' };
    assert.deepEqual(action('a.example.com'), redirect);
    assert.deepEqual(action('b.example.com'), redirect);
    assert.equal(action('c.example.com')?.type, 'direct');
  });
});
