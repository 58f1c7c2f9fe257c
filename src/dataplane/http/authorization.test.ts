import assert from 'node:assert/strict';
import { test } from 'node:test';
import type {
  Authorization,
  AuthorizationCondition,
  AuthorizationOperation,
  AuthorizationRule,
  AuthorizationSource,
} from '../../compile/snapshot.ts';
import {
  type AuthorizationAttributes,
  CompiledAuthorization,
  cidrMatcher,
  pathTemplate,
  type Verdict,
} from './authorization.ts';

interface Req {
  identity?: string;
  sourceIp?: string;
  destinationIp?: string;
  sni?: string;
  auth?: { principal: string; audiences: string[]; presenter?: string; claims: Record<string, unknown> };
  headers?: Record<string, string | string[]>;
  method?: string;
  host?: string;
  path?: string;
  port?: number;
}

/** The same derivations the phase makes from an exchange. */
function attrs(r: Req): AuthorizationAttributes {
  const principal = r.identity?.replace(/^spiffe:\/\//, '');
  const m = principal ? /^([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(principal) : null;
  return {
    principal,
    trustDomain: m?.[1],
    namespace: m?.[2],
    serviceAccount: m ? `${m[2]}/${m[3]}` : undefined,
    sourceIp: r.sourceIp ?? '127.0.0.1',
    remoteIp: r.sourceIp ?? '127.0.0.1',
    destinationIp: r.destinationIp ?? '127.0.0.1',
    sni: r.sni,
    requestPrincipal: r.auth?.principal,
    audiences: r.auth?.audiences,
    presenter: r.auth?.presenter,
    claims: r.auth?.claims,
    header: (n) => {
      const v = r.headers?.[n];
      return Array.isArray(v) ? v.join(',') : v;
    },
    method: r.method ?? 'GET',
    host: r.host ?? 'reviews:9080',
    path: r.path ?? '/',
    port: r.port ?? 9080,
  };
}

/** What the log and the rule header say of a verdict. */
const decision = (v: Verdict | undefined) => v && { allow: v.allow, rule: v.rule };

const PRODUCTPAGE = 'spiffe://cluster.local/ns/default/sa/productpage';
const RATINGS = 'spiffe://cluster.local/ns/default/sa/ratings';
const FOO = 'spiffe://cluster.local/ns/foo/sa/bar';

/** One rule in an ALLOW policy: does the request match it? */
function allowedBy(rule: AuthorizationRule, r: Req): boolean {
  return new CompiledAuthorization({ allow: [{ name: 'default/t', rules: [rule] }] }).decide(attrs(r)).allow;
}
const from = (source: AuthorizationSource): AuthorizationRule => ({ from: [{ ...source }] });
const to = (operation: AuthorizationOperation): AuthorizationRule => ({ to: [{ ...operation }] });
const when = (...c: AuthorizationCondition[]): AuthorizationRule => ({ when: c });

const fields: { name: string; rule: AuthorizationRule; yes: Req[]; no: Req[] }[] = [
  {
    name: 'principals: exact',
    rule: from({ principals: ['cluster.local/ns/default/sa/productpage'] }),
    yes: [{ identity: PRODUCTPAGE }],
    no: [{ identity: RATINGS }, {}],
  },
  {
    name: 'principals: prefix, suffix (CVE-2020-16844), presence',
    rule: from({ principals: ['cluster.local/ns/foo/*', '*/sa/ratings'] }),
    yes: [{ identity: FOO }, { identity: RATINGS }],
    no: [{ identity: PRODUCTPAGE }, {}],
  },
  {
    name: 'principals: "*" is any mTLS peer, plaintext has none',
    rule: from({ principals: ['*'] }),
    yes: [{ identity: PRODUCTPAGE }],
    no: [{}],
  },
  {
    name: 'notPrincipals: ["*"] is plaintext only',
    rule: from({ notPrincipals: ['*'] }),
    yes: [{}],
    no: [{ identity: PRODUCTPAGE }],
  },
  {
    name: 'namespaces and notNamespaces, ANDed',
    rule: from({ namespaces: ['default', 'fo*'], notNamespaces: ['foo'] }),
    yes: [{ identity: PRODUCTPAGE }],
    no: [{ identity: FOO }, {}],
  },
  {
    name: 'serviceAccounts (exact, `.` is no wildcard: CVE-2026-39350)',
    rule: from({ serviceAccounts: ['default/cert-manager.io'] }),
    yes: [{ identity: 'spiffe://cluster.local/ns/default/sa/cert-manager.io' }],
    no: [{ identity: 'spiffe://cluster.local/ns/default/sa/cert-manager-io' }, { identity: PRODUCTPAGE }],
  },
  {
    name: 'trustDomains and notTrustDomains',
    rule: from({ trustDomains: ['*.local'], notTrustDomains: ['evil.local'] }),
    yes: [{ identity: PRODUCTPAGE }],
    no: [{ identity: 'spiffe://evil.local/ns/default/sa/x' }, { identity: 'spiffe://example.org/ns/a/sa/b' }],
  },
  {
    name: 'requestPrincipals: only with a verified JWT',
    rule: from({ requestPrincipals: ['https://issuer.example/*'] }),
    yes: [{ auth: { principal: 'https://issuer.example/alice', audiences: [], claims: {} } }],
    no: [{}, { auth: { principal: 'https://other/alice', audiences: [], claims: {} } }],
  },
  {
    name: 'notRequestPrincipals: ["*"] is a request without a JWT',
    rule: from({ notRequestPrincipals: ['*'] }),
    yes: [{}],
    no: [{ auth: { principal: 'i/s', audiences: [], claims: {} } }],
  },
  {
    name: 'ipBlocks and notIpBlocks (IPv4-mapped addresses too)',
    rule: from({ ipBlocks: ['10.0.0.0/8', '127.0.0.1/32'], notIpBlocks: ['10.9.0.0/16'] }),
    yes: [{ sourceIp: '10.1.2.3' }, { sourceIp: '::ffff:127.0.0.1' }],
    no: [{ sourceIp: '10.9.1.1' }, { sourceIp: '192.168.0.1' }],
  },
  {
    name: 'remoteIpBlocks and notRemoteIpBlocks, IPv6',
    rule: from({ remoteIpBlocks: ['::1/128', 'fd00::/8'], notRemoteIpBlocks: ['fd00::1/128'] }),
    yes: [{ sourceIp: '::1' }, { sourceIp: 'fd00::2' }],
    no: [{ sourceIp: 'fd00::1' }, { sourceIp: '127.0.0.1' }],
  },
  {
    name: 'hosts: case already folded; exact does not match host:port (Istio)',
    rule: to({ hosts: ['reviews', 'ratings:*'], notHosts: ['ratings:1'] }),
    yes: [{ host: 'reviews' }, { host: 'ratings:9080' }],
    no: [{ host: 'reviews:9080' }, { host: 'ratings:1' }],
  },
  {
    name: 'ports and notPorts',
    rule: to({ ports: [9080, 9090], notPorts: [9090] }),
    yes: [{ port: 9080 }],
    no: [{ port: 9090 }, { port: 80 }],
  },
  {
    name: 'methods (case-sensitive) and notMethods',
    rule: to({ methods: ['GET', 'P*'], notMethods: ['PATCH'] }),
    yes: [{ method: 'GET' }, { method: 'POST' }],
    no: [{ method: 'get' }, { method: 'PATCH' }, { method: 'DELETE' }],
  },
  {
    name: 'paths: exact, prefix, suffix, presence against the path without the query',
    rule: to({ paths: ['/admin', '/api/*', '*.css'], notPaths: ['/api/internal*'] }),
    yes: [{ path: '/admin' }, { path: '/api/x' }, { path: '/static/a.css' }],
    no: [{ path: '/admin/' }, { path: '/api/internal/x' }, { path: '/Admin' }],
  },
  {
    name: 'paths: {*} is one segment, {**} any number',
    rule: to({ paths: ['/foo/{*}', '/bar/{**}/end', '/baz/{*}/x/{**}'] }),
    yes: [{ path: '/foo/bar' }, { path: '/bar//end' }, { path: '/bar/a/b/end' }, { path: '/baz/1/x/' }],
    no: [{ path: '/foo/bar/baz' }, { path: '/foo/' }, { path: '/bar/a' }, { path: '/baz/1/2/x/y' }],
  },
  {
    name: 'one of several sources, one of several operations',
    rule: {
      from: [{ namespaces: ['foo'] }, { principals: ['*/sa/productpage'] }],
      to: [{ methods: ['GET'] }, { paths: ['/public*'] }],
    },
    yes: [
      { identity: FOO, method: 'GET' },
      { identity: PRODUCTPAGE, method: 'POST', path: '/public/x' },
    ],
    no: [{ identity: RATINGS }, { identity: FOO, method: 'POST', path: '/private' }],
  },
  {
    name: 'an empty rule matches everything',
    rule: {},
    yes: [{}, { identity: FOO, method: 'DELETE' }],
    no: [],
  },
];

const conditions: { name: string; rule: AuthorizationRule; yes: Req[]; no: Req[] }[] = [
  {
    name: 'request.headers: repeated values joined with ","',
    rule: when({ key: 'request.headers[x-user]', values: ['alice', 'a,b'] }),
    yes: [{ headers: { 'x-user': 'alice' } }, { headers: { 'x-user': ['a', 'b'] } }],
    no: [{ headers: { 'x-user': 'bob' } }, {}],
  },
  {
    name: 'request.headers notValues: an absent header matches',
    rule: when({ key: 'request.headers[x-env]', notValues: ['prod'] }),
    yes: [{}, { headers: { 'x-env': 'dev' } }],
    no: [{ headers: { 'x-env': 'prod' } }],
  },
  {
    name: 'source.ip and remote.ip',
    rule: when(
      { key: 'source.ip', values: ['10.0.0.0/8'] },
      { key: 'remote.ip', notValues: ['10.0.0.1/32'] },
    ),
    yes: [{ sourceIp: '10.0.0.2' }],
    no: [{ sourceIp: '10.0.0.1' }, { sourceIp: '11.0.0.1' }],
  },
  {
    name: 'source.namespace, source.principal, source.serviceAccount, source.trustDomain',
    rule: when(
      { key: 'source.namespace', values: ['default'] },
      { key: 'source.principal', values: ['*/sa/productpage'] },
      { key: 'source.serviceAccount', values: ['default/productpage'] },
      { key: 'source.trustDomain', values: ['cluster.*'] },
    ),
    yes: [{ identity: PRODUCTPAGE }],
    no: [{ identity: RATINGS }, {}],
  },
  {
    name: 'request.auth.principal, audiences (any of the list), presenter',
    rule: when(
      { key: 'request.auth.principal', values: ['iss/alice'] },
      { key: 'request.auth.audiences', values: ['bookinfo'] },
      { key: 'request.auth.presenter', values: ['web-*'] },
    ),
    yes: [
      {
        auth: { principal: 'iss/alice', audiences: ['other', 'bookinfo'], presenter: 'web-app', claims: {} },
      },
    ],
    no: [
      { auth: { principal: 'iss/alice', audiences: ['other'], presenter: 'web-app', claims: {} } },
      { auth: { principal: 'iss/alice', audiences: ['bookinfo'], claims: {} } },
      {},
    ],
  },
  {
    name: 'request.auth.claims: a string or a list of strings, nested',
    rule: when(
      { key: 'request.auth.claims[groups]', values: ['admin'] },
      { key: 'request.auth.claims[realm][role]', values: ['ops-*'] },
    ),
    yes: [
      {
        auth: {
          principal: 'i/s',
          audiences: [],
          claims: { groups: ['dev', 'admin'], realm: { role: 'ops-1' } },
        },
      },
      {
        auth: {
          principal: 'i/s',
          audiences: [],
          claims: { groups: 'admin', realm: { role: ['x', 'ops-2'] } },
        },
      },
    ],
    no: [
      { auth: { principal: 'i/s', audiences: [], claims: { groups: ['dev'], realm: { role: 'ops-1' } } } },
      { auth: { principal: 'i/s', audiences: [], claims: { groups: 'admin', realm: 'ops-1' } } },
      { auth: { principal: 'i/s', audiences: [], claims: { groups: 1, realm: { role: 'ops-1' } } } },
      {},
    ],
  },
  {
    name: 'destination.ip, destination.port, connection.sni',
    rule: when(
      { key: 'destination.ip', values: ['127.0.0.0/8'] },
      { key: 'destination.port', values: ['9080'] },
      { key: 'connection.sni', values: ['outbound_.9080_.*'] },
    ),
    yes: [{ sni: 'outbound_.9080_._.reviews.default.svc.cluster.local' }],
    no: [
      { sni: 'outbound_.9080_._.reviews.default.svc.cluster.local', port: 9090 },
      { sni: 'outbound_.9080_._.reviews.default.svc.cluster.local', destinationIp: '10.0.0.1' },
      {},
    ],
  },
];

for (const c of [...fields, ...conditions]) {
  test(`authorization matcher: ${c.name}`, () => {
    for (const r of c.yes) assert.equal(allowedBy(c.rule, r), true, `should match ${JSON.stringify(r)}`);
    for (const r of c.no) assert.equal(allowedBy(c.rule, r), false, `should not match ${JSON.stringify(r)}`);
  });
}

const denyAdmin = { name: 'default/deny-admin', rules: [{ to: [{ paths: ['/admin*'] }] }] };
const allowProductpage = {
  name: 'default/allow-pp',
  rules: [{ to: [{ methods: ['POST'] }] }, { from: [{ principals: ['*/sa/productpage'] }] }],
};

const order: { name: string; authz: Authorization; req: Req; allow: boolean; rule: string }[] = [
  {
    name: 'no ALLOW policy: allowed',
    authz: { deny: [denyAdmin] },
    req: { path: '/x' },
    allow: true,
    rule: '',
  },
  {
    name: 'DENY beats ALLOW',
    authz: { deny: [denyAdmin], allow: [allowProductpage] },
    req: { identity: PRODUCTPAGE, path: '/admin/x' },
    allow: false,
    rule: 'AuthorizationPolicy default/deny-admin rules[0] (DENY)',
  },
  {
    name: 'ALLOW names the rule that matched',
    authz: { deny: [denyAdmin], allow: [allowProductpage] },
    req: { identity: PRODUCTPAGE, path: '/x' },
    allow: true,
    rule: 'AuthorizationPolicy default/allow-pp rules[1] (ALLOW)',
  },
  {
    name: 'ALLOW policies, none matching: denied',
    authz: { allow: [allowProductpage, { name: 'default/b', rules: [] }] },
    req: { identity: RATINGS },
    allow: false,
    rule: 'no ALLOW policy matched (AuthorizationPolicy default/allow-pp, default/b)',
  },
  {
    name: 'spec: {} (ALLOW, no rules) denies all',
    authz: { allow: [{ name: 'default/allow-nothing', rules: [] }] },
    req: { identity: PRODUCTPAGE },
    allow: false,
    rule: 'no ALLOW policy matched (AuthorizationPolicy default/allow-nothing)',
  },
  {
    name: 'AUDIT never decides',
    authz: { audit: [{ name: 'default/audit', rules: [{}] }] },
    req: {},
    allow: true,
    rule: '',
  },
  {
    name: 'dry-run policies are not enforced',
    authz: {
      deny: [{ ...denyAdmin, dryRun: true }],
      allow: [{ name: 'default/allow-nothing', dryRun: true, rules: [] }],
    },
    req: { path: '/admin' },
    allow: true,
    rule: '',
  },
  {
    name: 'a condition this proxy cannot evaluate: DENY applies (fail closed)',
    authz: { deny: [{ name: 'default/future', rules: [{ when: [{ key: 'future.attr', values: ['x'] }] }] }] },
    req: {},
    allow: false,
    rule: 'AuthorizationPolicy default/future rules[0] (DENY)',
  },
  {
    name: 'a condition this proxy cannot evaluate: ALLOW does not',
    authz: {
      allow: [{ name: 'default/future', rules: [{ when: [{ key: 'future.attr', values: ['x'] }] }] }],
    },
    req: {},
    allow: false,
    rule: 'no ALLOW policy matched (AuthorizationPolicy default/future)',
  },
];

for (const c of order) {
  test(`authorization order: ${c.name}`, () => {
    assert.deepEqual(decision(new CompiledAuthorization(c.authz).decide(attrs(c.req))), {
      allow: c.allow,
      rule: c.rule,
    });
  });
}

test('authorization: CUSTOM rules are matched apart, first; DENY and ALLOW decide after them', () => {
  const authz = new CompiledAuthorization({
    custom: [
      {
        name: 'default/ext',
        provider: 'opa',
        rules: [{ to: [{ paths: ['/other'] }] }, { to: [{ paths: ['/ext'] }] }],
      },
      // Istio's dry run is for ALLOW and DENY only: a CUSTOM policy that says it is enforced all the same.
      { name: 'default/ext-dry', provider: 'opa', dryRun: true, rules: [{ to: [{ paths: ['/dry'] }] }] },
    ],
    deny: [denyAdmin],
  });
  assert.deepEqual(decision(authz.custom(attrs({ path: '/ext' }))), {
    allow: false,
    rule: 'AuthorizationPolicy default/ext rules[1] (CUSTOM, provider opa)',
  });
  assert.equal(
    authz.custom(attrs({ path: '/dry' }))?.rule,
    'AuthorizationPolicy default/ext-dry rules[0] (CUSTOM, provider opa)',
  );
  assert.equal(authz.custom(attrs({ path: '/none' })), undefined);
  assert.deepEqual(authz.decide(attrs({ path: '/ext' })), { allow: true, rule: '' });
  assert.equal(authz.decide(attrs({ path: '/admin' })).allow, false);
  assert.equal(authz.records, false);
});

test('authorization: dry-run and AUDIT are recorded apart from the decision', () => {
  const authz = new CompiledAuthorization({
    deny: [{ ...denyAdmin, dryRun: true }],
    allow: [{ name: 'default/allow-get', dryRun: true, rules: [{ to: [{ methods: ['GET'] }] }] }],
    audit: [
      {
        name: 'default/audit-admin',
        rules: [{ to: [{ methods: ['POST'] }] }, { to: [{ paths: ['/admin'] }] }],
      },
      { name: 'default/audit-none', rules: [{ to: [{ methods: ['PUT'] }] }] },
    ],
  });
  assert.equal(authz.records, true);
  assert.deepEqual(decision(authz.dryRun(attrs({ path: '/admin' }))), {
    allow: false,
    rule: 'AuthorizationPolicy default/deny-admin rules[0] (DENY)',
  });
  assert.deepEqual(decision(authz.dryRun(attrs({ method: 'POST', path: '/x' }))), {
    allow: false,
    rule: 'no ALLOW policy matched (AuthorizationPolicy default/allow-get)',
  });
  assert.deepEqual(decision(authz.dryRun(attrs({ path: '/x' }))), {
    allow: true,
    rule: 'AuthorizationPolicy default/allow-get rules[0] (ALLOW)',
  });
  assert.deepEqual(authz.audited(attrs({ path: '/admin' })), [
    'AuthorizationPolicy default/audit-admin rules[1] (AUDIT)',
  ]);
  assert.deepEqual(decision(authz.decide(attrs({ path: '/admin' }))), { allow: true, rule: '' });
  assert.equal(new CompiledAuthorization({ deny: [denyAdmin] }).records, false);
  assert.equal(new CompiledAuthorization({ deny: [denyAdmin] }).dryRun(attrs({})), undefined);
  // Envoy's two shadow engines, each over its own dry-run policies.
  assert.equal(authz.shadowDeny(attrs({ path: '/admin' }))?.policy, 'default/deny-admin');
  assert.deepEqual(authz.shadowDeny(attrs({ path: '/x' })), { allow: true, rule: '' });
  assert.deepEqual(authz.shadowAllow(attrs({ path: '/admin' })), {
    allow: true,
    rule: 'AuthorizationPolicy default/allow-get rules[0] (ALLOW)',
    action: 'ALLOW',
    policy: 'default/allow-get',
    index: 0,
  });
  assert.equal(authz.shadowAllow(attrs({ method: 'POST', path: '/x' }))?.allow, false);
  assert.equal(new CompiledAuthorization({ deny: [denyAdmin] }).shadowAllow(attrs({})), undefined);
});

test('authorization: path templates escape everything but {*} and {**}', () => {
  assert.equal(pathTemplate('/a.b/{*}').test('/aXb/c'), false);
  assert.equal(pathTemplate('/a.b/{*}').test('/a.b/c'), true);
  assert.equal(pathTemplate('/(x)+/{**}').test('/(x)+/'), true);
});

test('authorization: CIDR blocks, IPv4 on the fast path and IPv6 through BlockList', () => {
  const cases: [string[], string | undefined, boolean][] = [
    [['0.0.0.0/0'], '203.0.113.9', true],
    [['0.0.0.0/0'], '::1', false],
    [['10.0.0.0/8'], '10.255.255.255', true],
    [['10.0.0.0/8'], '11.0.0.0', false],
    [['128.0.0.0/1'], '255.1.2.3', true],
    [['128.0.0.0/1'], '127.255.255.255', false],
    [['192.168.1.4/31'], '192.168.1.5', true],
    [['192.168.1.4/31'], '192.168.1.6', false],
    [['127.0.0.1'], '127.0.0.1', true],
    [['127.0.0.1'], '::ffff:127.0.0.1', true],
    [['::ffff:127.0.0.1'], '127.0.0.1', true],
    [['127.0.0.1'], '127.0.0.10', false],
    [['2001:db8::/32'], '2001:db8:1::5', true],
    [['2001:db8::/32'], '2001:db9::5', false],
    [['2001:db8::/32'], '10.0.0.1', false],
    [['10.0.0.0/8'], '10.0.0', false],
    [['10.0.0.0/8'], '10.0.0.256', false],
    [['10.0.0.0/8'], 'not-an-ip', false],
    [['10.0.0.0/8'], undefined, false],
  ];
  for (const [blocks, ip, want] of cases) assert.equal(cidrMatcher(blocks)(ip), want, `${blocks} ∋ ${ip}`);
});
