import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProxySnapshot, RouteMatch } from '../compile/snapshot.ts';
import { ProxyConfig } from './config.ts';
import { CompiledRouteTable, RequestView } from './http/route-table.ts';
import { UpstreamState } from './upstream/state.ts';

function snapshot(over: Partial<ProxySnapshot> = {}): ProxySnapshot {
  return {
    schema: 5,
    version: 'v1',
    revision: 1,
    proxy: {
      id: 'p',
      role: 'sidecar',
      namespace: 'default',
      identity: 'spiffe://cluster.local/ns/default/sa/p',
    },
    trustDomain: 'cluster.local',
    listeners: [{ name: 'outbound', type: 'outbound', routeTable: 'outbound' }],
    routeTables: [
      {
        name: 'outbound',
        virtualHosts: [
          {
            name: 'a',
            domains: ['a', 'a:80', '*.wild.example'],
            routes: [
              {
                name: 'r0',
                origin: 'VS r0',
                matches: [
                  { uri: { regex: '/v[0-9]+/.*' } },
                  { headers: [{ name: 'x-user', match: { prefix: 'ja' } }] },
                ],
                action: { type: 'forward', clusters: [{ cluster: 'c', weight: 100 }] },
              },
              {
                name: 'r1',
                origin: 'VS r1',
                matches: [{ uri: { exact: '/only' } }],
                action: { type: 'direct', status: 204 },
              },
            ],
          },
        ],
      },
    ],
    clusters: [
      {
        name: 'c',
        direction: 'outbound',
        port: 80,
        lb: { type: 'ROUND_ROBIN' },
        tls: { mode: 'DISABLE' },
        endpoints: [],
      },
    ],
    ...over,
  };
}

test('a valid snapshot builds; routes match on precompiled matchers, first match wins', () => {
  const cfg = ProxyConfig.build(snapshot());
  const table = cfg.routeTables.get('outbound')!;
  const vh = table.virtualHost('a:80')!;
  const route = (path: string, headers: Record<string, string> = {}) =>
    CompiledRouteTable.route(vh, new RequestView(path, '', 'GET', 'http', 'a:80', headers))?.name;
  assert.equal(route('/v2/x'), 'r0');
  assert.equal(route('/v2'), undefined, 'regex matches the whole path');
  assert.equal(route('/other', { 'x-user': 'jason' }), 'r0');
  assert.equal(route('/only'), 'r1');
  assert.equal(table.virtualHost('b.wild.example:8080')?.name, 'a', 'wildcards match with the port stripped');
  assert.equal(table.virtualHost('nope'), undefined);
});

test('snapshots the proxy cannot run are rejected with a reason', () => {
  const cases: [Partial<ProxySnapshot>, RegExp][] = [
    [{ schema: 99 }, /schema 99 is not supported/],
    [{ clusters: [] }, /route r0 refers to unknown cluster c/],
    [
      { listeners: [{ name: 'outbound', type: 'outbound', routeTable: 'missing' }] },
      /refers to unknown route table missing/,
    ],
    [
      {
        routeTables: [
          {
            name: 'outbound',
            virtualHosts: [
              {
                name: 'a',
                domains: ['a'],
                routes: [
                  {
                    name: 'bad',
                    origin: 'VS bad',
                    matches: [{ uri: { regex: '(?=x)' } }],
                    action: { type: 'direct', status: 200 },
                  },
                ],
              },
            ],
          },
        ],
      },
      /route table outbound: .*look-?ahead/i,
    ],
  ];
  for (const [over, reason] of cases) {
    assert.throws(
      () => ProxyConfig.build(snapshot(over)),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'TRL_SNAPSHOT_REJECTED');
        assert.match(err.message, reason);
        return true;
      },
    );
  }
});

test('every HTTPMatchRequest field matches as Istio documents it', () => {
  type Req = {
    path?: string;
    query?: string;
    method?: string;
    scheme?: string;
    authority?: string;
    headers?: Record<string, string>;
  };
  const cases: [RouteMatch, Req, boolean][] = [
    [{ uri: { exact: '/Login' }, ignoreUriCase: true }, { path: '/LOGIN' }, true],
    [{ uri: { exact: '/Login' } }, { path: '/LOGIN' }, false],
    [{ uri: { prefix: '/API' }, ignoreUriCase: true }, { path: '/api/v1' }, true],
    [{ method: { exact: 'DELETE' } }, { method: 'GET' }, false],
    [{ method: { exact: 'DELETE' } }, { method: 'DELETE' }, true],
    [{ scheme: { exact: 'https' } }, { scheme: 'http' }, false],
    [{ authority: { prefix: 'reviews' } }, { authority: 'reviews:9080' }, true],
    [{ headers: [{ name: 'x-canary', match: {} }] }, { headers: { 'x-canary': '' } }, true],
    [{ headers: [{ name: 'x-canary', match: {} }] }, { headers: {} }, false],
    [
      { withoutHeaders: [{ name: 'end-user', match: { exact: 'jason' } }] },
      { headers: { 'end-user': 'jason' } },
      false,
    ],
    [
      { withoutHeaders: [{ name: 'end-user', match: { exact: 'jason' } }] },
      { headers: { 'end-user': 'ann' } },
      true,
    ],
    [{ withoutHeaders: [{ name: 'x-debug', match: {} }] }, { headers: {} }, true],
    [{ queryParams: [{ name: 'v', match: { exact: '2' } }] }, { query: '?v=2&x=1' }, true],
    [{ queryParams: [{ name: 'v', match: { regex: '[0-9]+' } }] }, { query: '?v=abc' }, false],
    [{ queryParams: [{ name: 'debug', match: {} }] }, { query: '?debug' }, true],
    [{ port: 9080 }, { authority: 'reviews:9080' }, true],
    [{ port: 9080 }, { authority: 'reviews' }, false],
    [{ uri: { prefix: '/a' }, method: { exact: 'GET' } }, { path: '/a', method: 'POST' }, false],
  ];
  for (const [match, req, want] of cases) {
    const s = snapshot({
      routeTables: [
        {
          name: 'outbound',
          virtualHosts: [
            {
              name: 'a',
              domains: ['*'],
              routes: [
                { name: 'm', origin: 'VS m', matches: [match], action: { type: 'direct', status: 200 } },
              ],
            },
          ],
        },
      ],
    });
    const vh = ProxyConfig.build(s).routeTables.get('outbound')!.virtualHost('x')!;
    const view = new RequestView(
      req.path ?? '/',
      req.query ?? '',
      req.method ?? 'GET',
      req.scheme ?? 'http',
      req.authority ?? 'x',
      req.headers ?? {},
    );
    assert.equal(
      CompiledRouteTable.route(vh, view) !== undefined,
      want,
      `${JSON.stringify(match)} vs ${JSON.stringify(req)}`,
    );
  }
});

test('per-endpoint state survives a snapshot swap and is dropped when the endpoint leaves', () => {
  const ep = (address: string) => ({ address, port: 8080, healthy: true });
  const withEndpoints = (version: string, ...addresses: string[]) =>
    snapshot({
      version,
      clusters: [
        {
          name: 'c',
          direction: 'outbound',
          port: 80,
          lb: { type: 'ROUND_ROBIN' },
          tls: { mode: 'DISABLE' },
          endpoints: addresses.map(ep),
        },
      ],
    });
  const state = new UpstreamState();
  const swap = (s: ProxySnapshot) => {
    const cfg = ProxyConfig.build(s, state);
    const live = cfg.liveState();
    state.retain(live.endpoints, live.clusters);
    return cfg.clusters.get('c')!;
  };

  const a = swap(withEndpoints('v1', '10.0.0.1', '10.0.0.2'));
  assert.equal(a.pick()?.endpoint.address, '10.0.0.1');
  a.endpoints[1].state.active = 3;

  // The next push lists the same endpoints and one more: what was known of them carries over.
  const b = swap(withEndpoints('v2', '10.0.0.1', '10.0.0.2', '10.0.0.3'));
  assert.notEqual(b, a);
  assert.equal(b.endpoints[1].state, a.endpoints[1].state);
  assert.equal(b.endpoints[1].state.active, 3);
  assert.equal(b.pick()?.endpoint.address, '10.0.0.2', 'round robin goes on where it was');

  // 10.0.0.2 leaves: its state goes with it, and comes back fresh if the endpoint does.
  const key = a.endpoints[1].state.key;
  swap(withEndpoints('v3', '10.0.0.1'));
  assert.equal(state.has(key), false);
  const d = swap(withEndpoints('v4', '10.0.0.1', '10.0.0.2'));
  assert.equal(d.endpoints[1].state.active, 0);
});

test('a snapshot asking for a load balancer the proxy lacks is rejected', () => {
  const s = snapshot();
  // PASSTHROUGH without endpoints is original destination; with endpoints it is a balancer.
  s.clusters[0].lb = { type: 'PASSTHROUGH' };
  s.clusters[0].endpoints = [{ address: '10.0.0.1', port: 80, healthy: true }];
  assert.throws(
    () => ProxyConfig.build(s),
    /cluster c: load balancer PASSTHROUGH is not supported by this proxy/,
  );
});
