// VirtualService and DestinationRule traffic fields → snapshot, as table tests: Istio YAML in, the
// route action or cluster the productpage sidecar gets out. Bookinfo's services and proxies.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bookinfoInput, decodeResources, PRODUCTPAGE, proxyOf } from '../../test/support/bookinfo-mesh.ts';
import { meshConfigMap } from '../../test/support/mesh-config-map.ts';
import { compile } from './compile.ts';
import { DEFAULT_RETRY } from './route-policy.ts';
import type { Cluster, ForwardAction, ProxySnapshot, Route } from './snapshot.ts';

const SUBSETS = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-subsets}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
`;

function snapshotFor(yaml: string): ProxySnapshot {
  const input = bookinfoInput(decodeResources(yaml, 'test.yaml'));
  return compile(input, proxyOf(input, PRODUCTPAGE));
}

function reviewsRoutes(s: ProxySnapshot): Route[] {
  const vh = s.routeTables[0].virtualHosts.find((v) => v.domains.includes('reviews:9080'));
  assert.ok(vh);
  return vh.routes;
}

function forward(r: Route): ForwardAction {
  assert.equal(r.action.type, 'forward');
  return r.action as ForwardAction;
}

const vs = (http: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
${http
  .trim()
  .split('\n')
  .map((l) => `  ${l}`)
  .join('\n')}
`;

describe('compile: VirtualService http[] traffic fields', () => {
  const cases: { name: string; http: string; mesh?: string; expect: (routes: Route[]) => void }[] = [
    {
      name: "no retries: Istio's default policy",
      http: '- route: [{destination: {host: reviews}}]',
      expect: ([r]) => assert.deepEqual(forward(r).retry, DEFAULT_RETRY),
    },
    {
      name: 'retries: attempts, perTryTimeout, retryOn codes and conditions, backoff',
      http: `- retries: {attempts: 3, perTryTimeout: 2s, retryOn: "gateway-error,503,connect-failure", backoff: 50ms, retryRemoteLocalities: true}
  route: [{destination: {host: reviews}}]`,
      expect: ([r]) =>
        assert.deepEqual(forward(r).retry, {
          attempts: 3,
          perTryTimeoutMs: 2000,
          on: ['gateway-error', 'connect-failure', 'retriable-status-codes'],
          statusCodes: [503],
          backoffMs: 50,
          ignorePreviousHosts: true,
          remoteLocalities: true,
          origin: 'VirtualService default/reviews http[0] retries',
        }),
    },
    {
      name: "retries without retryOn keep Istio's conditions and 503; perTryTimeout defaults to the route timeout",
      http: `- retries: {attempts: 4}
  timeout: 3s
  route: [{destination: {host: reviews}}]`,
      expect: ([r]) => {
        const retry = forward(r).retry!;
        assert.deepEqual(retry.on, DEFAULT_RETRY.on);
        assert.deepEqual(retry.statusCodes, [503]);
        assert.equal(retry.perTryTimeoutMs, 3000);
        assert.equal(retry.attempts, 4);
      },
    },
    {
      name: 'attempts 0 turns retries off',
      http: `- retries: {attempts: 0}
  route: [{destination: {host: reviews}}]`,
      expect: ([r]) => assert.equal(forward(r).retry, undefined),
    },
    {
      name: 'mesh config defaultHttpRetryPolicy replaces the built-in default',
      http: '- route: [{destination: {host: reviews}}]',
      mesh: 'defaultHttpRetryPolicy: {attempts: 5, retryOn: "5xx"}',
      expect: ([r]) => {
        const retry = forward(r).retry!;
        assert.equal(retry.attempts, 5);
        assert.deepEqual(retry.on, ['5xx']);
        assert.equal(retry.origin, 'meshConfig.defaultHttpRetryPolicy');
      },
    },
    {
      name: 'fault: delay with the legacy integer percent, abort with grpcStatus',
      http: `- fault: {delay: {fixedDelay: 7s, percent: 30}, abort: {grpcStatus: UNAVAILABLE, percentage: {value: 0.5}}}
  route: [{destination: {host: reviews}}]`,
      expect: ([r]) =>
        assert.deepEqual(forward(r).fault, {
          delay: { ms: 7000, percent: 30 },
          abort: { status: 200, grpcStatus: 14, percent: 0.5 },
        }),
    },
    {
      name: 'fault without a percentage applies to every request',
      http: `- fault: {abort: {httpStatus: 503}}
  route: [{destination: {host: reviews}}]`,
      expect: ([r]) => assert.deepEqual(forward(r).fault, { abort: { status: 503, percent: 100 } }),
    },
    {
      name: 'rewrite.uri replaces each match’s own prefix: one route per match',
      http: `- match: [{uri: {prefix: /a}}, {uri: {prefix: /bb}, ignoreUriCase: true}, {uri: {exact: /c}}]
  rewrite: {uri: /x, authority: other}
  route: [{destination: {host: reviews}}]`,
      expect: (routes) => {
        assert.equal(routes.length, 3);
        assert.deepEqual(
          routes.map((r) => forward(r).rewrite),
          [
            { uri: '/x', authority: 'other', prefix: '/a' },
            { uri: '/x', authority: 'other', prefix: '/bb', ignoreCase: true },
            { uri: '/x', authority: 'other' },
          ],
        );
      },
    },
    {
      name: 'uriRegexRewrite',
      http: `- rewrite: {uriRegexRewrite: {match: "^/v1/(.*)", rewrite: "/\\\\1"}}
  route: [{destination: {host: reviews}}]`,
      expect: ([r]) =>
        assert.deepEqual(forward(r).rewrite, { regex: { match: '^/v1/(.*)', rewrite: '/\\1' } }),
    },
    {
      name: 'redirect.prefixRewrite keeps the matched prefix',
      http: `- match: [{uri: {prefix: /old}}]
  redirect: {prefixRewrite: /new}`,
      expect: ([r]) => {
        assert.equal(r.action.type, 'redirect');
        assert.deepEqual((r.action as { prefixRewrite?: unknown }).prefixRewrite, {
          prefix: '/old',
          replacement: '/new',
        });
      },
    },
    {
      name: 'headers at the route and destination level, names lower-cased',
      http: `- headers: {request: {set: {X-A: "1"}, remove: [X-B]}, response: {add: {X-C: "2"}}}
  route:
  - destination: {host: reviews}
    headers: {request: {add: {X-D: "3"}}}`,
      expect: ([r]) => {
        const a = forward(r);
        assert.deepEqual(a.headers, {
          request: { set: { 'x-a': '1' }, remove: ['x-b'] },
          response: { add: { 'x-c': '2' } },
        });
        assert.deepEqual(a.clusters[0].headers, { request: { add: { 'x-d': '3' } } });
      },
    },
    {
      name: 'mirror with the deprecated mirrorPercent, and mirrors with their own percentages',
      http: `- mirror: {host: ratings}
  mirrorPercent: 20
  route: [{destination: {host: reviews}}]
- mirrors: [{destination: {host: ratings}, percentage: {value: 5}}, {destination: {host: reviews, subset: v2}}]
  route: [{destination: {host: reviews}}]`,
      expect: ([a, b]) => {
        assert.deepEqual(forward(a).mirrors, [
          { cluster: 'outbound|9080||ratings.default.svc.cluster.local', percent: 20 },
        ]);
        assert.deepEqual(forward(b).mirrors, [
          { cluster: 'outbound|9080||ratings.default.svc.cluster.local', percent: 5 },
          { cluster: 'outbound|9080|v2|reviews.default.svc.cluster.local', percent: 100 },
        ]);
      },
    },
    {
      name: 'corsPolicy, with the deprecated allowOrigin list as exact matches',
      http: `- corsPolicy: {allowOrigin: ["https://a.example"], allowMethods: [GET], maxAge: 1h, allowCredentials: false, unmatchedPreflights: IGNORE}
  route: [{destination: {host: reviews}}]`,
      expect: ([r]) =>
        assert.deepEqual(forward(r).cors, {
          allowOrigins: [{ exact: 'https://a.example' }],
          allowMethods: ['GET'],
          maxAgeSeconds: 3600,
          allowCredentials: false,
          unmatchedPreflights: 'IGNORE',
        }),
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const text = SUBSETS + '---\n' + vs(c.http) + (c.mesh ? `---\n${meshConfigMap(c.mesh)}` : '');
      c.expect(reviewsRoutes(snapshotFor(text)));
    });
  }

  test('delegation: matches merge with the root’s, conflicting ones drop, the root’s settings are inherited', () => {
    const routes = reviewsRoutes(
      snapshotFor(`${SUBSETS}---
${vs(`- match: [{uri: {prefix: /api}, headers: {x-team: {exact: a}}}]
  timeout: 2s
  delegate: {name: reviews-api}
- route: [{destination: {host: reviews, subset: v3}}]`)}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-api}
spec:
  http:
  - match: [{uri: {prefix: /api/v2}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /elsewhere}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{headers: {x-team: {exact: b}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - timeout: 5s
    route: [{destination: {host: reviews, subset: v1}}]
`),
    );
    assert.equal(routes.length, 3, 'two delegate rules conflict with the root match and are dropped');
    assert.deepEqual(routes[0].matches, [
      { uri: { prefix: '/api/v2' }, headers: [{ name: 'x-team', match: { exact: 'a' } }] },
    ]);
    assert.equal(forward(routes[0]).timeoutMs, 2000, 'the root rule’s timeout is inherited');
    assert.equal(forward(routes[1]).timeoutMs, 5000, 'the delegate’s own timeout wins');
    assert.deepEqual(routes[1].matches, [
      { uri: { prefix: '/api' }, headers: [{ name: 'x-team', match: { exact: 'a' } }] },
    ]);
    assert.match(
      routes[0].origin,
      /reviews-api http\[0\] \(delegated by VirtualService default\/reviews http\[0\]\)/,
    );
  });

  test('a delegate that does not exist answers 500 naming it', () => {
    const [r] = reviewsRoutes(snapshotFor(vs('- delegate: {name: nowhere}')));
    assert.equal(r.action.type, 'direct');
    assert.match((r.action as { body?: string }).body ?? '', /delegates to VirtualService default\/nowhere/);
  });
});

describe('compile: DestinationRule traffic policies', () => {
  const reviewsCluster = (s: ProxySnapshot, subset = ''): Cluster => {
    const c = s.clusters.find((x) => x.name === `outbound|9080|${subset}|reviews.default.svc.cluster.local`);
    assert.ok(c, `cluster for subset ${subset}`);
    return c;
  };
  const dr = (body: string, name = 'reviews', created?: string) =>
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}${created ? `, creationTimestamp: "${created}"` : ''}}
spec:
  host: reviews
${body
  .trim()
  .split('\n')
  .map((l) => `  ${l}`)
  .join('\n')}
`;
  const routedToV2 = vs(
    '- route: [{destination: {host: reviews, subset: v2}, weight: 50}, {destination: {host: reviews}, weight: 50}]',
  );

  test('no policy: LEAST_REQUEST, mesh mTLS, no limits, no ejection', () => {
    const c = reviewsCluster(snapshotFor(vs('- route: [{destination: {host: reviews}}]')));
    assert.deepEqual(c.lb, { type: 'LEAST_REQUEST' });
    assert.equal(c.tls.mode, 'ISTIO_MUTUAL');
    assert.equal(c.connectionPool, undefined);
    assert.equal(c.outlierDetection, undefined);
    assert.equal(c.locality, undefined);
  });

  test('precedence: top level, its port-level settings, then the subset and the subset’s port-level ones', () => {
    const s = snapshotFor(
      `${dr(`trafficPolicy:
  loadBalancer: {simple: RANDOM}
  connectionPool: {tcp: {maxConnections: 10}}
  portLevelSettings:
  - port: {number: 9080}
    connectionPool: {tcp: {maxConnections: 20}}
subsets:
- {name: v1, labels: {version: v1}}
- name: v2
  labels: {version: v2}
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    portLevelSettings:
    - port: {number: 9080}
      outlierDetection: {consecutive5xxErrors: 3}`)}---\n${routedToV2}`,
    );
    const top = reviewsCluster(s);
    assert.deepEqual(top.lb, { type: 'RANDOM' });
    assert.equal(top.connectionPool?.maxConnections, 20, 'port-level overrides its policy');
    const v2 = reviewsCluster(s, 'v2');
    assert.deepEqual(v2.lb, { type: 'ROUND_ROBIN' }, 'the subset overrides the top level');
    assert.equal(v2.connectionPool?.maxConnections, 20, 'fields the subset leaves out come from above');
    assert.equal(v2.outlierDetection?.consecutive5xxErrors, 3);
  });

  test('several DestinationRules for one host merge: the oldest policy wins, subsets add up', () => {
    const s = snapshotFor(
      `${dr('trafficPolicy: {loadBalancer: {simple: RANDOM}}\nsubsets: [{name: v1, labels: {version: v1}}]', 'first', '2025-01-01T00:00:00Z')}---
${dr('trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\nsubsets: [{name: v1, labels: {version: v3}}, {name: v2, labels: {version: v2}}]', 'second', '2025-06-01T00:00:00Z')}---
${routedToV2}`,
    );
    assert.deepEqual(reviewsCluster(s).lb, { type: 'RANDOM' });
    assert.deepEqual(
      reviewsCluster(s, 'v2').endpoints.map((e) => e.workload),
      ['reviews-v2'],
      'the second rule’s new subset is there',
    );
  });

  const policies: { name: string; policy: string; expect: (c: Cluster) => void }[] = [
    {
      name: 'consistentHash on a header with ring hash (default size)',
      policy: 'loadBalancer: {consistentHash: {httpHeaderName: X-User}}',
      expect: (c) =>
        assert.deepEqual(c.lb, { type: 'RING_HASH', hash: { header: 'x-user' }, tableSize: 1024 }),
    },
    {
      name: 'consistentHash on a generated session cookie (ttl 0s) with maglev',
      policy: 'loadBalancer: {consistentHash: {httpCookie: {name: s, ttl: 0s}, maglev: {tableSize: 251}}}',
      expect: (c) =>
        assert.deepEqual(c.lb, { type: 'MAGLEV', hash: { cookie: { name: 's', ttlMs: 0 } }, tableSize: 251 }),
    },
    {
      name: 'consistentHash on the source IP, ring size from ringHash',
      policy: 'loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 4096}}}',
      expect: (c) => assert.deepEqual(c.lb, { type: 'RING_HASH', hash: { sourceIp: true }, tableSize: 4096 }),
    },
    {
      name: 'outlierDetection: Istio’s defaults, and locality balancing turned on',
      policy: 'outlierDetection: {}',
      expect: (c) => {
        assert.deepEqual(c.outlierDetection, {
          consecutive5xxErrors: 5,
          consecutiveGatewayErrors: 0,
          consecutiveLocalOriginFailures: 5,
          splitExternalLocalOriginErrors: false,
          intervalMs: 10_000,
          baseEjectionTimeMs: 30_000,
          maxEjectionPercent: 10,
          minHealthPercent: 0,
        });
        assert.deepEqual(c.locality, {});
      },
    },
    {
      name: 'the deprecated consecutiveErrors counts gateway errors only',
      policy: 'outlierDetection: {consecutiveErrors: 7, outlierDetectionHttpErrorCodes: [500, 503]}',
      expect: (c) => {
        assert.equal(c.outlierDetection?.consecutiveGatewayErrors, 7);
        assert.equal(c.outlierDetection?.consecutive5xxErrors, 0);
        assert.deepEqual(c.outlierDetection?.errorCodes, [500, 503]);
      },
    },
    {
      name: 'localityLbSetting distribute works without outlier detection; failover needs it',
      policy: `loadBalancer:
  localityLbSetting:
    distribute: [{from: "r1/*", to: {"r1/*": 80, "r2/*": 20}}]`,
      expect: (c) =>
        assert.deepEqual(c.locality, { distribute: [{ from: 'r1/*', to: { 'r1/*': 80, 'r2/*': 20 } }] }),
    },
    {
      name: 'connectionPool: every tcp and http field',
      policy: `connectionPool:
  tcp: {maxConnections: 1, connectTimeout: 250ms, tcpKeepalive: {time: 60s}, maxConnectionDuration: 1h}
  http: {http1MaxPendingRequests: 2, http2MaxRequests: 3, maxRequestsPerConnection: 4, maxRetries: 5, idleTimeout: 30s, h2UpgradePolicy: UPGRADE, maxConcurrentStreams: 6}`,
      expect: (c) =>
        assert.deepEqual(c.connectionPool, {
          maxConnections: 1,
          connectTimeoutMs: 250,
          tcpKeepalive: { timeMs: 60_000 },
          maxConnectionDurationMs: 3_600_000,
          maxPendingRequests: 2,
          maxRequests: 3,
          maxRequestsPerConnection: 4,
          maxRetries: 5,
          idleTimeoutMs: 30_000,
          h2Upgrade: true,
          maxConcurrentStreams: 6,
        }),
    },
    {
      name: 'useClientProtocol false downgrades to HTTP/1.1; http2KeepAlive with its default timeout',
      policy: 'connectionPool: {http: {useClientProtocol: false, http2KeepAlive: {interval: 10s}}}',
      expect: (c) =>
        assert.deepEqual(c.connectionPool, {
          http1Only: true,
          http2KeepAlive: { intervalMs: 10_000, timeoutMs: 20_000 },
        }),
    },
    {
      name: 'retryBudget with Istio’s defaults',
      policy: 'retryBudget: {}',
      expect: (c) =>
        assert.deepEqual(c.connectionPool, { retryBudget: { percent: 20, minRetryConcurrency: 3 } }),
    },
    {
      name: 'warmup (and the deprecated warmupDurationSecs) with Envoy’s defaults',
      policy: 'loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 30s, aggression: 2}}',
      expect: (c) => assert.deepEqual(c.warmup, { windowMs: 30_000, minimumPercent: 10, aggression: 2 }),
    },
    {
      name: 'warmupDurationSecs on the default balancer',
      policy: 'loadBalancer: {warmupDurationSecs: 10s}',
      expect: (c) => assert.deepEqual(c.warmup, { windowMs: 10_000, minimumPercent: 10, aggression: 1 }),
    },
    {
      name: 'tls DISABLE',
      policy: 'tls: {mode: DISABLE}',
      expect: (c) => assert.deepEqual(c.tls, { mode: 'DISABLE' }),
    },
  ];
  for (const p of policies) {
    test(p.name, () => {
      const c = reviewsCluster(
        snapshotFor(
          `${dr(`trafficPolicy:\n${p.policy.replace(/^/gm, '  ')}`)}---\n${vs('- route: [{destination: {host: reviews}}]')}`,
        ),
      );
      p.expect(c);
    });
  }

  test('failoverPriority: the proxy gets its labels to rank endpoints by', () => {
    const plain = snapshotFor(vs('- route: [{destination: {host: reviews}}]'));
    assert.equal(plain.proxy.labels, undefined);
    const s = snapshotFor(
      `${dr('trafficPolicy:\n  outlierDetection: {}\n  loadBalancer: {localityLbSetting: {failoverPriority: [version]}}')}---\n${vs('- route: [{destination: {host: reviews}}]')}`,
    );
    assert.deepEqual(reviewsCluster(s).locality, { failoverPriority: ['version'] });
    assert.equal(s.proxy.labels?.app, 'productpage');
  });

  test('mesh config: connectTimeout, h2UpgradePolicy and localityLbSetting are the defaults a rule overrides', () => {
    const s = snapshotFor(
      `${dr('trafficPolicy: {outlierDetection: {}}')}---\n${vs('- route: [{destination: {host: reviews}}]')}---\n${meshConfigMap(
        'connectTimeout: 2s\nh2UpgradePolicy: UPGRADE\nlocalityLbSetting: {failover: [{from: r1, to: r2}]}',
      )}`,
    );
    const c = reviewsCluster(s);
    assert.deepEqual(c.connectionPool, { connectTimeoutMs: 2000, h2Upgrade: true });
    assert.deepEqual(c.locality, { failover: [{ from: 'r1', to: 'r2' }] });
  });
});
