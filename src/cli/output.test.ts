import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Resource } from '../api/resource.ts';
import type { ProxySnapshot } from '../compile/snapshot.ts';
import type { ProxyStatus } from '../controlplane/push/push.ts';
import { TrellisError } from '../lib/errors.ts';
import { UsageError } from './args.ts';
import { formatApply } from './commands/apply.ts';
import { formatTable } from './commands/get.ts';
import { formatAction, formatDomains, formatMatch, formatProxyConfig } from './commands/proxy-config.ts';
import { formatProxyStatus } from './commands/proxy-status.ts';
import { age, table, yamlDocs } from './output.ts';
import { describeError } from './report.ts';

const NOW = Date.parse('2025-01-10T12:00:00Z');
const ago = (ms: number) => new Date(NOW - ms).toISOString();

describe('table', () => {
  test('pads every column but the last, three spaces apart, no trailing spaces', () => {
    assert.equal(
      table(
        ['NAME', 'HOSTS', 'AGE'],
        [
          ['reviews', 'reviews', '5s'],
          ['a', '', '10d'],
        ],
      ),
      'NAME      HOSTS     AGE\nreviews   reviews   5s\na                   10d\n',
    );
  });
  test('header only when there are no rows', () => {
    assert.equal(table(['A', 'B'], []), 'A   B\n');
  });
});

describe('age', () => {
  const cases: [number, string][] = [
    [0, '0s'],
    [59_000, '59s'],
    [119_000, '119s'],
    [125_000, '2m5s'],
    [9 * 60_000, '9m'],
    [25 * 60_000, '25m'],
    [(5 * 60 + 3) * 60_000, '5h3m'],
    [20 * 3600_000, '20h'],
    [(3 * 24 + 4) * 3600_000, '3d4h'],
    [40 * 86400_000, '40d'],
    [3 * 365 * 86400_000, '3y'],
    [-5000, '0s'],
  ];
  for (const [ms, want] of cases) test(`${ms} ms → ${want}`, () => assert.equal(age(ago(ms), NOW), want));
  test('missing or invalid timestamp', () => {
    assert.equal(age(undefined, NOW), '<unknown>');
    assert.equal(age('yesterday', NOW), '<unknown>');
  });
});

test('yamlDocs separates documents with ---', () => {
  assert.equal(yamlDocs([{ a: 1 }, { b: [1, 2] }]), 'a: 1\n---\nb:\n  - 1\n  - 2\n');
});

function res(
  kind: string,
  name: string,
  spec: unknown,
  namespace = 'default',
  createdMsAgo = 60_000,
): Resource {
  return {
    apiVersion: kind === 'Service' || kind === 'Workload' ? 'v1' : 'networking.istio.io/v1',
    kind,
    metadata: { name, namespace, creationTimestamp: ago(createdMsAgo), resourceVersion: '7', generation: 2 },
    spec,
  };
}

describe('get: formatTable', () => {
  const cases: {
    name: string;
    items: Resource[];
    opts?: { allNamespaces?: boolean; wide?: boolean };
    want: string[];
  }[] = [
    {
      name: 'VirtualService: HOSTS, GATEWAYS (mesh by default), sorted by name',
      items: [
        res('VirtualService', 'reviews', { hosts: ['reviews'] }),
        res(
          'VirtualService',
          'bookinfo',
          { hosts: ['*'], gateways: ['bookinfo-gateway'] },
          'default',
          3 * 3600_000,
        ),
      ],
      want: [
        'NAME       HOSTS     GATEWAYS           AGE',
        'bookinfo   *         bookinfo-gateway   3h',
        'reviews    reviews   mesh               60s',
      ],
    },
    {
      name: 'DestinationRule with -A',
      items: [
        res(
          'DestinationRule',
          'reviews',
          { host: 'reviews', subsets: [{ name: 'v1' }, { name: 'v2' }] },
          'prod',
        ),
        res('DestinationRule', 'ratings', { host: 'ratings' }, 'default'),
      ],
      opts: { allNamespaces: true },
      want: [
        'NAMESPACE   NAME      HOST      SUBSETS   AGE',
        'default     ratings   ratings   <none>    60s',
        'prod        reviews   reviews   v1,v2     60s',
      ],
    },
    {
      name: 'Gateway: SERVERS',
      items: [
        res('Gateway', 'gw', {
          servers: [
            {
              port: { number: 80, protocol: 'http', name: 'http' },
              hosts: ['a.example.com', 'b.example.com'],
            },
          ],
        }),
      ],
      want: [
        'NAME   SERVERS                                AGE',
        'gw     80/HTTP[a.example.com b.example.com]   60s',
      ],
    },
    {
      name: 'Service: PORTS, SELECTOR',
      items: [
        res('Service', 'reviews', { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080 }] }),
      ],
      want: ['NAME      PORTS      SELECTOR      AGE', 'reviews   9080/TCP   app=reviews   60s'],
    },
    {
      name: 'Workload: ROLE, REPLICAS, LABELS with defaults',
      items: [
        res('Workload', 'reviews-v1', { command: 'node', labels: { app: 'reviews', version: 'v1' } }),
        res('Workload', 'ingress', { role: 'gateway', replicas: 2 }),
      ],
      want: [
        'NAME         ROLE      REPLICAS   LABELS                   AGE',
        'ingress      gateway   2          <none>                   60s',
        'reviews-v1   sidecar   1          app=reviews,version=v1   60s',
      ],
    },
    {
      name: 'other kinds: AGE only; wide adds GENERATION and REVISION',
      items: [res('PeerAuthentication', 'default', { mtls: { mode: 'STRICT' } })],
      opts: { wide: true },
      want: ['NAME      AGE   GENERATION   REVISION', 'default   60s   2            7'],
    },
  ];
  for (const c of cases) {
    test(c.name, () => assert.equal(formatTable(c.items, { ...c.opts, now: NOW }), `${c.want.join('\n')}\n`));
  }
});

describe('apply: formatApply', () => {
  test('results, warnings, revision', () => {
    const out = formatApply({
      revision: 12,
      dryRun: false,
      results: [
        { resource: 'VirtualService default/reviews', action: 'created' },
        { resource: 'DestinationRule default/reviews', action: 'unchanged' },
      ],
      warnings: [{ file: 'vs.yaml', line: 9, path: 'spec.http[0].retries', message: 'not enforced yet' }],
    });
    assert.equal(
      out.results,
      'VirtualService default/reviews created\nDestinationRule default/reviews unchanged\n',
    );
    assert.equal(out.warnings, 'Warning: vs.yaml:9: spec.http[0].retries: not enforced yet\n');
    assert.equal(out.revision, 'revision 12\n');
  });
  test('dry run is marked on every line', () => {
    const out = formatApply({
      revision: 3,
      dryRun: true,
      results: [{ resource: 'Gateway default/gw', action: 'configured' }],
      warnings: [],
    });
    assert.equal(
      out.results + out.warnings + out.revision,
      'Gateway default/gw configured (dry run)\nrevision 3 (dry run)\n',
    );
  });
});

function proxy(id: string, over: Partial<ProxyStatus>): ProxyStatus {
  return {
    id,
    role: 'sidecar',
    workload: id.split('-0')[0],
    namespace: 'default',
    identity: `spiffe://cluster.local/ns/default/sa/${id}`,
    healthy: true,
    connectedAt: '2025-01-10T11:00:00Z',
    status: 'SYNCED',
    ...over,
  };
}

describe('proxy-status: formatProxyStatus', () => {
  test('table, NACK reasons, convergence footer', () => {
    const out = formatProxyStatus({
      revision: 9,
      convergence: { revision: 8, ms: 12.5, proxies: 3 },
      proxies: [
        proxy('productpage-v1-0.default', {
          latest: { version: 'abc', revision: 9 },
          acked: { version: 'abc', revision: 9, at: '', pushMs: 3.2 },
        }),
        proxy('reviews-v1-0.default', {
          status: 'NACKED',
          healthy: false,
          latest: { version: 'def', revision: 9 },
          acked: { version: 'old', revision: 7, at: '', pushMs: 4 },
          nack: { version: 'def', reason: 'route table "x" missing', at: '' },
        }),
        proxy('ingress-0.istio-system', { role: 'gateway', namespace: 'istio-system', status: 'NOT SENT' }),
      ],
    });
    assert.equal(
      out,
      [
        'NAME                       ROLE      WORKLOAD                 STATUS     VERSION   REVISION   PUSH(ms)   HEALTHY',
        'productpage-v1-0.default   sidecar   productpage-v1.default   SYNCED     abc       9          3.2        yes',
        'reviews-v1-0.default       sidecar   reviews-v1.default       NACKED     old       7          4          no',
        'ingress-0.istio-system     gateway   ingress.istio-system     NOT SENT   -         -          -          yes',
        '',
        'reviews-v1-0.default: NACK def: route table "x" missing',
        '',
        'store revision 9; last change converged on all 3 proxies in 12.5 ms (revision 8)',
        '',
      ].join('\n'),
    );
  });
  test('a change with no proxies connected', () => {
    assert.match(
      formatProxyStatus({ revision: 3, convergence: { revision: 3, ms: 1, proxies: 0 }, proxies: [] }),
      /store revision 3; last change \(revision 3\) had no proxies to reach\n$/,
    );
  });
  test('no proxies, nothing converged', () => {
    assert.equal(
      formatProxyStatus({ revision: 0, convergence: null, proxies: [] }),
      'No proxies connected.\n\nstore revision 0; no change has converged yet\n',
    );
  });
});

describe('proxy-config', () => {
  test('formatMatch', () => {
    assert.equal(formatMatch([]), '/*');
    assert.equal(
      formatMatch([{ uri: { exact: '/productpage' } }, { uri: { prefix: '/static' } }]),
      '/productpage | /static*',
    );
    assert.equal(
      formatMatch([
        { uri: { regex: '^/api/v[0-9]+' }, headers: [{ name: 'end-user', match: { exact: 'jason' } }] },
      ]),
      '~^/api/v[0-9]+ header[end-user]=jason',
    );
    assert.equal(formatMatch([{ headers: [] }]), '/*');
  });
  test('formatAction', () => {
    const fwd = (clusters: { cluster: string; weight: number }[]) => ({
      name: 'r',
      origin: 'o',
      matches: [],
      action: { type: 'forward' as const, clusters },
    });
    assert.equal(formatAction(fwd([{ cluster: 'c1', weight: 100 }])), 'c1');
    assert.equal(
      formatAction(
        fwd([
          { cluster: 'c1', weight: 90 },
          { cluster: 'c2', weight: 10 },
        ]),
      ),
      'c1 90%, c2 10%',
    );
    assert.equal(
      formatAction({ name: 'r', origin: 'o', matches: [], action: { type: 'direct', status: 404 } }),
      'direct 404',
    );
  });
  test('formatDomains', () => {
    assert.equal(formatDomains(['a']), 'a');
    assert.equal(formatDomains(['a.ns.svc', 'a.ns.svc:80', 'a', 'a:80']), 'a, a:80 +2 more');
  });
  test('all tables', () => {
    const fqdn = 'reviews.default.svc.cluster.local';
    const snap: ProxySnapshot = {
      schema: 5,
      version: 'v1',
      revision: 4,
      proxy: {
        id: 'productpage-v1-0.default',
        role: 'sidecar',
        namespace: 'default',
        identity: 'spiffe://x',
      },
      trustDomain: 'cluster.local',
      listeners: [
        { name: 'outbound', type: 'outbound', routeTable: 'outbound' },
        { name: 'inbound', type: 'inbound', mtls: 'STRICT', services: [], ports: [9080] },
      ],
      routeTables: [
        {
          name: 'outbound',
          virtualHosts: [
            {
              name: `${fqdn}:9080`,
              domains: ['reviews', 'reviews:9080'],
              routes: [
                {
                  name: 'default/reviews.0',
                  origin: 'VirtualService default/reviews',
                  matches: [],
                  action: {
                    type: 'forward',
                    clusters: [{ cluster: `outbound|9080|v1|${fqdn}`, weight: 100 }],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        {
          name: `outbound|9080|v1|${fqdn}`,
          direction: 'outbound',
          service: fqdn,
          port: 9080,
          subset: 'v1',
          origin: 'DestinationRule default/reviews',
          lb: { type: 'ROUND_ROBIN' },
          tls: { mode: 'ISTIO_MUTUAL', sni: 'outbound_.9080_.v1_.reviews', identities: [] },
          endpoints: [
            {
              address: '127.0.0.1',
              port: 40001,
              identity: 'spiffe://cluster.local/ns/default/sa/reviews',
              healthy: true,
            },
            { address: '127.0.0.1', port: 40002, healthy: false },
          ],
        },
      ],
    };
    assert.equal(
      formatProxyConfig(snap, 'all'),
      [
        'NAME       TYPE                    PORT   ROUTE TABLE',
        'outbound   outbound                -      outbound',
        'inbound    inbound (mTLS STRICT)   -      -> app 9080',
        '',
        'TABLE      VIRTUAL HOST                             DOMAINS                 MATCH   CLUSTERS                                             ORIGIN',
        `outbound   ${fqdn}:9080   reviews, reviews:9080   /*      outbound|9080|v1|${fqdn}   VirtualService default/reviews`,
        '',
        'NAME                                                 DIRECTION   SUBSET   ENDPOINTS   TLS            LB            REQUESTS   RETRIES   OVERFLOWS   EJECTED   ORIGIN',
        `outbound|9080|v1|${fqdn}   outbound    v1       2           ISTIO_MUTUAL   ROUND_ROBIN   -          -         -           -         DestinationRule default/reviews`,
        '',
        'ENDPOINT          STATUS      IDENTITY                                       CLUSTER',
        `127.0.0.1:40001   HEALTHY     spiffe://cluster.local/ns/default/sa/reviews   outbound|9080|v1|${fqdn}`,
        `127.0.0.1:40002   UNHEALTHY   -                                              outbound|9080|v1|${fqdn}`,
        '',
      ].join('\n'),
    );
  });
});

describe('describeError', () => {
  test('usage error → 64 with a pointer to help', () => {
    assert.deepEqual(describeError(new UsageError('unknown flag --x', 'get')), {
      text: "error: unknown flag --x\nRun 'trellis get --help' for usage.\n",
      exitCode: 64,
    });
  });
  test('validation error → 65 with every issue, no stack', () => {
    const err = new TrellisError('TRL_VALIDATION', '2 errors found; nothing was applied', {
      issues: [
        {
          file: 'vs.yaml',
          line: 8,
          column: 7,
          path: 'spec.http[0].rout',
          message: 'unknown field "rout"',
          resource: 'VirtualService default/reviews',
        },
        { file: 'dr.yaml', line: 3, path: 'metadata.name', message: 'required' },
      ],
    });
    const { text, exitCode } = describeError(err);
    assert.equal(exitCode, 65);
    assert.equal(
      text,
      'error: 2 errors found; nothing was applied\n' +
        '  vs.yaml:8:7 VirtualService default/reviews: spec.http[0].rout: unknown field "rout"\n' +
        '  dr.yaml:3: metadata.name: required\n',
    );
  });
  test('other TrellisErrors → 1; unexpected errors → 1 without a stack unless debugging', () => {
    assert.equal(
      describeError(new TrellisError('TRL_NOT_FOUND', 'VirtualService default/x not found')).exitCode,
      1,
    );
    assert.deepEqual(describeError(new Error('boom')), { text: 'error: boom\n', exitCode: 1 });
    assert.match(describeError(new Error('boom'), true).text, /at /);
  });
});
