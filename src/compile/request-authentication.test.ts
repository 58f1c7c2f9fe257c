import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RequestAuthenticationSpec } from '../api/kinds/index.ts';
import type { Resource } from '../api/resource.ts';
import { compile } from './compile.ts';
import type { CompileInput, JwksState } from './mesh-index.ts';
import type { JwtRule, ProxyNode } from './snapshot.ts';

let age = 0;
function res(apiVersion: string, kind: string, namespace: string, name: string, spec: unknown): Resource {
  return {
    apiVersion,
    kind,
    metadata: {
      name,
      namespace,
      creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, age++)).toISOString(),
    },
    spec,
  } as Resource;
}
const ra = (namespace: string, name: string, spec: RequestAuthenticationSpec) =>
  res('security.istio.io/v1', 'RequestAuthentication', namespace, name, spec);

const INLINE = '{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"a"}]}';

const base: Resource[] = [
  res('v1', 'Service', 'default', 'reviews', { selector: { app: 'reviews' }, ports: [{ port: 9080 }] }),
  res('networking.istio.io/v1', 'Gateway', 'istio-system', 'ingress', {
    selector: { istio: 'ingressgateway' },
    servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }],
  }),
];

const sidecar: ProxyNode = {
  id: 'reviews-v1-0.default',
  role: 'sidecar',
  workload: 'reviews-v1',
  namespace: 'default',
  serviceAccount: 'reviews',
  labels: { app: 'reviews', version: 'v1' },
  address: '127.0.0.1',
  inboundPort: 15006,
  ports: [{ name: 'http', port: 9080 }],
  healthy: true,
};
const other: ProxyNode = {
  ...sidecar,
  id: 'ratings-v1-0.default',
  workload: 'ratings-v1',
  labels: { app: 'ratings' },
};
const gateway: ProxyNode = {
  id: 'istio-ingressgateway-0.istio-system',
  role: 'gateway',
  workload: 'istio-ingressgateway',
  namespace: 'istio-system',
  serviceAccount: 'istio-ingressgateway',
  labels: { istio: 'ingressgateway' },
  address: '127.0.0.1',
  ports: [],
  gatewayPorts: { '80': 8080 },
  healthy: true,
};

function rulesOf(
  resources: Resource[],
  node: ProxyNode,
  jwks?: Map<string, JwksState>,
): JwtRule[] | undefined {
  const input: CompileInput = {
    revision: 1,
    resources: [...base, ...resources],
    proxies: [sidecar, other, gateway],
    mesh: { trustDomain: 'cluster.local' },
    jwks,
  };
  const snap = compile(input, node);
  const l = snap.listeners.find((x) => x.type === (node.role === 'gateway' ? 'gateway' : 'inbound'));
  assert.ok(l && (l.type === 'inbound' || l.type === 'gateway'));
  return l.jwtRules;
}

const origins = (rules: JwtRule[] | undefined) => rules?.map((r) => r.origin) ?? [];
const rule = (issuer: string, extra = {}) => ({ issuer, jwks: INLINE, ...extra });

describe('RequestAuthentication → jwt rules per listener', () => {
  const cases: { name: string; policies: Resource[]; node: ProxyNode; want: string[] }[] = [
    { name: 'no policy: no rules (the phase is off the path)', policies: [], node: sidecar, want: [] },
    {
      name: 'root namespace without selector: mesh-wide, sidecars and gateways',
      policies: [ra('istio-system', 'mesh', { jwtRules: [rule('a')] })],
      node: gateway,
      want: ['RequestAuthentication istio-system/mesh jwtRules[0]'],
    },
    {
      name: 'root namespace, for a sidecar elsewhere',
      policies: [ra('istio-system', 'mesh', { jwtRules: [rule('a')] })],
      node: sidecar,
      want: ['RequestAuthentication istio-system/mesh jwtRules[0]'],
    },
    {
      name: 'namespace-wide applies to its own namespace only',
      policies: [
        ra('default', 'ns', { jwtRules: [rule('a')] }),
        ra('other', 'ns', { jwtRules: [rule('b')] }),
      ],
      node: sidecar,
      want: ['RequestAuthentication default/ns jwtRules[0]'],
    },
    {
      name: 'a selector picks matching workloads of its namespace',
      policies: [
        ra('default', 'reviews', { selector: { matchLabels: { app: 'reviews' } }, jwtRules: [rule('a')] }),
        ra('default', 'ratings', { selector: { matchLabels: { app: 'ratings' } }, jwtRules: [rule('b')] }),
      ],
      node: sidecar,
      want: ['RequestAuthentication default/reviews jwtRules[0]'],
    },
    {
      name: 'a selector in the root namespace matches workloads of every namespace',
      policies: [
        ra('istio-system', 'sel', { selector: { matchLabels: { app: 'reviews' } }, jwtRules: [rule('a')] }),
        ra('other', 'sel', { selector: { matchLabels: { app: 'reviews' } }, jwtRules: [rule('b')] }),
      ],
      node: sidecar,
      want: ['RequestAuthentication istio-system/sel jwtRules[0]'],
    },
    {
      name: 'targetRefs: the Gateway a gateway listener serves',
      policies: [
        ra('istio-system', 'gw', {
          targetRefs: [{ kind: 'Gateway', name: 'ingress' }],
          jwtRules: [rule('a')],
        }),
        ra('istio-system', 'other-gw', {
          targetRefs: [{ kind: 'Gateway', name: 'egress' }],
          jwtRules: [rule('b')],
        }),
      ],
      node: gateway,
      want: ['RequestAuthentication istio-system/gw jwtRules[0]'],
    },
    {
      name: 'targetRefs: the Service a sidecar backs',
      policies: [
        ra('default', 'svc', { targetRefs: [{ kind: 'Service', name: 'reviews' }], jwtRules: [rule('a')] }),
      ],
      node: sidecar,
      want: ['RequestAuthentication default/svc jwtRules[0]'],
    },
    {
      name: 'every policy that applies contributes its rules, oldest first',
      policies: [
        ra('default', 'ns', { jwtRules: [rule('a'), rule('b')] }),
        ra('istio-system', 'mesh', { jwtRules: [rule('c')] }),
      ],
      node: sidecar,
      want: [
        'RequestAuthentication default/ns jwtRules[0]',
        'RequestAuthentication default/ns jwtRules[1]',
        'RequestAuthentication istio-system/mesh jwtRules[0]',
      ],
    },
  ];
  for (const c of cases) test(c.name, () => assert.deepEqual(origins(rulesOf(c.policies, c.node)), c.want));

  test('default token locations; explicit ones replace them; header names lower-cased', () => {
    const [def, explicit, cookie] = rulesOf(
      [
        ra('default', 'r', {
          jwtRules: [
            rule('a'),
            rule('b', { fromHeaders: [{ name: 'X-Jwt', prefix: 'Token ' }], forwardOriginalToken: true }),
            rule('c', { fromCookies: ['session'], outputPayloadToHeader: 'X-Payload' }),
          ],
        }),
      ],
      sidecar,
    )!;
    assert.deepEqual(def.locations, {
      headers: [{ name: 'authorization', prefix: 'Bearer ' }],
      params: ['access_token'],
      cookies: [],
    });
    assert.deepEqual(explicit.locations, {
      headers: [{ name: 'x-jwt', prefix: 'Token ' }],
      params: [],
      cookies: [],
    });
    assert.equal(explicit.forwardOriginalToken, true);
    assert.deepEqual(cookie.locations, { headers: [], params: [], cookies: ['session'] });
    assert.equal(cookie.outputPayloadToHeader, 'x-payload');
  });

  test('remote key sets come from the control plane; one never fetched leaves the rule without keys', () => {
    const policies = [
      ra('default', 'r', {
        jwtRules: [
          { issuer: 'a', jwksUri: 'http://127.0.0.1:1/jwks' },
          { issuer: 'b', jwksUri: 'http://127.0.0.1:2/jwks' },
          { issuer: 'https://c.example.com' },
        ],
      }),
    ];
    const fetched = new Map<string, JwksState>([
      ['http://127.0.0.1:1/jwks', { jwks: INLINE }],
      ['http://127.0.0.1:2/jwks', { error: 'key set for b not fetched: connect ECONNREFUSED' }],
      ['oidc:https://c.example.com', { jwks: INLINE }],
    ]);
    const [a, b, c] = rulesOf(policies, sidecar, fetched)!;
    assert.equal(a.jwks, INLINE);
    assert.equal(b.jwks, undefined);
    assert.match(b.jwksError!, /ECONNREFUSED/);
    assert.equal(c.jwks, INLINE, 'no jwksUri: OpenID discovery of the issuer');
    const [unfetched] = rulesOf(policies, sidecar)!;
    assert.match(unfetched.jwksError!, /not fetched yet/);
  });

  test('a change of keys changes the snapshot version (and so is pushed)', () => {
    const input = (jwks: string): CompileInput => ({
      revision: 1,
      resources: [
        ...base,
        ra('default', 'r', { jwtRules: [{ issuer: 'a', jwksUri: 'http://127.0.0.1:1/jwks' }] }),
      ],
      proxies: [sidecar],
      mesh: { trustDomain: 'cluster.local' },
      jwks: new Map([['http://127.0.0.1:1/jwks', { jwks }]]),
    });
    assert.notEqual(compile(input(INLINE), sidecar).version, compile(input('{"keys":[]}'), sidecar).version);
  });
});

test('VirtualService @request.auth.claims keys compile to claim matches', () => {
  const vs = res('networking.istio.io/v1', 'VirtualService', 'istio-system', 'claims', {
    hosts: ['*'],
    gateways: ['ingress'],
    http: [
      {
        match: [
          { headers: { '@request.auth.claims.groups': { exact: 'admin' } } },
          { headers: { '@request.auth.claims[nested][key]': { prefix: 'v' } } },
        ],
        route: [{ destination: { host: 'reviews.default.svc.cluster.local' } }],
      },
    ],
  });
  const snap = compile(
    {
      revision: 1,
      resources: [...base, vs],
      proxies: [sidecar, gateway],
      mesh: { trustDomain: 'cluster.local' },
    },
    gateway,
  );
  const route = snap.routeTables[0].virtualHosts[0].routes[0];
  assert.deepEqual(
    route.matches.map((m) => m.headers?.[0].claim),
    [['groups'], ['nested', 'key']],
  );
});
