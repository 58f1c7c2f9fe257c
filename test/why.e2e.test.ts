// `trellis why` against real traffic: Bookinfo under `trellis up` with a JWT rule and a policy set at
// the gateway and on the sidecars; for every request of the table, what `why` says the mesh would do
// (which proxy answers, with which status, flag and rule, or that the app gets it) is what the
// proxies do when the request is really sent.
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateKeyPair, SignJWT } from 'jose';
import { sampleToken } from '../samples/bookinfo/security/jwt/gen-jwt.ts';
import { connect } from '../src/cli/client.ts';
import { meshView } from '../src/cli/commands/why.ts';
import { FLAGS_HEADER, RULE_HEADER } from '../src/dataplane/http/headers.ts';
import { type Outcome, outcomes, why } from '../src/simulate/why.ts';
import { Mesh, ROOT } from './support/mesh.ts';

const NET = path.join(ROOT, 'samples/bookinfo/networking');
const JWT = path.join(ROOT, 'samples/bookinfo/security/jwt');

const POLICIES = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/static/secret*"]}}]
  - from: [{source: {notRequestPrincipals: ["*"]}}]
    to: [{operation: {paths: ["/api/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: details-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/bookinfo-productpage"]}}]
    to: [{operation: {methods: ["GET"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: block-header, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - when: [{key: "request.headers[x-block]", values: ["yes"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/bookinfo-reviews"]}}]
`;

interface Row {
  /** The `why` source; traffic leaves from that workload's sidecar, or comes from outside. */
  source: string;
  /** The workload whose sidecar sends it for real (an identity's workload); none: from outside. */
  via?: string;
  method: string;
  /** Gateway rows: the path; mesh rows: the whole URL. */
  target: string;
  headers?: Record<string, string>;
}

let mesh: Mesh;
const tokens: Record<string, string> = {};

/** What the client saw: a proxy's own answer (it carries the flags header) or the app's. */
type Seen = { answered: { status: number; flag: string; rule?: string } } | { app: number };

function send(row: Row, gatewayPort: number): Promise<Seen> {
  const port = row.via ? mesh.instance(row.via).outboundPort! : gatewayPort;
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: row.method,
        // A sidecar's app uses it as its HTTP proxy: the absolute URL, as sent.
        path: row.target,
        headers: { ...row.headers, ...(row.via ? { host: new URL(row.target).host } : {}) },
        timeout: 15_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          const flag = res.headers[FLAGS_HEADER] as string | undefined;
          const rule = res.headers[RULE_HEADER] as string | undefined;
          resolve(
            flag === undefined
              ? { app: res.statusCode! }
              : { answered: { status: res.statusCode!, flag, ...(rule ? { rule } : {}) } },
          );
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer in 15 s')));
    req.on('error', reject);
    req.end();
  });
}

function expected(o: Outcome, external: boolean): Seen {
  if ('app' in o) return { app: 0 };
  const { status, flag, reason } = o.answered;
  // Inside the mesh the rule travels back in a header; at the edge it stays in the proxy's log.
  return { answered: { status, flag, ...(external ? {} : { rule: reason }) } };
}

describe('trellis why agrees with real traffic', { timeout: 300_000 }, () => {
  before(async () => {
    mesh = await Mesh.up('samples/bookinfo');
    const apply = async (args: string[], input?: string) => {
      const r = mesh.cli(['apply', ...args], input);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      await mesh.converged(mesh.info.instances.length, Number(/revision (\d+)/.exec(r.stdout)![1]));
    };
    await apply(['-f', path.join(NET, 'destination-rule-all.yaml')]);
    await apply(['-f', path.join(NET, 'virtual-service-all-v1.yaml')]);
    await apply(['-f', path.join(JWT, 'request-authentication.yaml')]);
    await apply(['-f', '-'], POLICIES);
    tokens.valid = await sampleToken({ sub: 'alice' });
    tokens.expired = await sampleToken({ sub: 'alice', expire: -120 });
    tokens.otherIssuer = await sampleToken({ issuer: 'someone-else@example.com' });
    const { privateKey } = await generateKeyPair('RS256');
    tokens.forged = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: 'bookinfo-sample' })
      .setIssuer('bookinfo-sample@trellis.dev')
      .setSubject('mallory')
      .setExpirationTime('1h')
      .sign(privateKey);
  });
  after(async () => {
    await mesh?.down();
  });

  test('on a table of 33 requests from outside, from workloads and from an identity', async () => {
    const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
    const ext = (target: string, headers?: Record<string, string>, method = 'GET'): Row => ({
      source: 'external',
      method,
      target,
      headers,
    });
    const from = (
      workload: string,
      method: string,
      target: string,
      headers?: Record<string, string>,
    ): Row => ({
      source: workload,
      via: workload,
      method,
      target,
      headers,
    });
    const rows: Row[] = [
      ext('/productpage'),
      ext('/static/secret.txt'),
      ext('/static/../static/secret.txt'),
      ext('/static/%2e%2e/static/secret.txt'),
      ext('/static\\secret.txt'),
      ext('/static//secret.txt'),
      ext('/STATIC/secret.txt'),
      ext('/api/v1/products'),
      ext('/api/v1/products', bearer(tokens.valid)),
      ext('/api/v1/products', bearer(tokens.expired)),
      ext('/api/v1/products', bearer(tokens.forged)),
      ext('/api/v1/products', bearer(tokens.otherIssuer)),
      ext('/api/v1/products', { authorization: `bearer ${tokens.valid}` }),
      ext('/nothing-here'),
      ext('/productpage?u=normal'),
      ext('/%00'),
      from('productpage-v1', 'GET', 'http://details:9080/details/0'),
      from('productpage-v1', 'POST', 'http://details:9080/details/0'),
      from('productpage-v1', 'GET', 'http://reviews:9080/reviews/0'),
      from('productpage-v1', 'GET', 'http://reviews:9080/reviews/0', { 'x-block': 'yes' }),
      from('productpage-v1', 'GET', 'http://reviews:9080/reviews/0', { 'X-Block': 'no' }),
      from('productpage-v1', 'GET', 'http://ratings:9080/ratings/0'),
      from('productpage-v1', 'GET', 'http://nowhere.default:9080/'),
      from('productpage-v1', 'GET', 'http://details:9080/details/../details/0'),
      from('productpage-v1', 'GET', 'http://details.default.svc.cluster.local:9080/details/0'),
      from('reviews-v1', 'GET', 'http://ratings:9080/ratings/0'),
      from('reviews-v1', 'POST', 'http://ratings:9080/ratings/0'),
      from('reviews-v1', 'GET', 'http://details:9080/details/0'),
      from('ratings-v1', 'GET', 'http://reviews:9080/reviews/0'),
      from('ratings-v1', 'GET', 'http://reviews:9080/reviews/0', { 'x-block': 'yes' }),
      from('ratings-v1', 'GET', 'http://details:9080/details/1'),
      {
        source: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews',
        via: 'reviews-v1',
        method: 'GET',
        target: 'http://ratings:9080/ratings/0',
      },
      from('details-v1', 'GET', 'http://productpage:9080/productpage'),
    ];
    assert.ok(rows.length >= 30);

    const gatewayPort = Number(new URL(mesh.gateway).port);
    const view = await meshView(await connect({ api: mesh.api, stateDir: mesh.stateDir }));
    const answered = new Set<number>();
    for (const row of rows) {
      const what = `${row.source} ${row.method} ${row.target}`;
      const url = row.via ? row.target : `${mesh.gateway}${row.target}`;
      const ends = outcomes((await why(view, { ...row, url })).hops);
      assert.equal(ends.length, 1, `${what}: one destination (every route here has one)`);
      const want = expected(ends[0], !row.via);
      const seen = await send(row, gatewayPort);
      if ('app' in want)
        assert.ok(
          'app' in seen,
          `${what}: why says the app gets it; a proxy answered ${JSON.stringify(seen)}`,
        );
      else {
        assert.deepEqual(seen, want, `${what}: why and the proxies disagree`);
        answered.add(want.answered.status);
      }
    }
    // The table covers every kind of answer: denied, unauthenticated, no route, bad request, and an
    // unknown host from a sidecar (REGISTRY_ONLY's BlackHoleCluster).
    assert.deepEqual([...answered].sort(), [400, 401, 403, 404, 502]);
  });

  test('the CLI prints each phase and the rule, and exits 1 when a proxy answers', () => {
    const denied = mesh.cli(['why', 'productpage', 'POST', 'http://details:9080/details/0']);
    assert.equal(denied.code, 1, denied.stderr);
    assert.match(
      denied.stdout,
      /details-v1-0\.default, inbound listener, mTLS from spiffe:\/\/cluster\.local\/ns\/default\/sa\/bookinfo-productpage/,
    );
    assert.match(
      denied.stdout,
      /authorize +ANSWERED +403 RBAC: no ALLOW policy matched \(AuthorizationPolicy default\/details-viewer\)/,
    );
    const allowed = mesh.cli([
      'why',
      'external',
      'GET',
      `${mesh.gateway}/api/v1/products`,
      '--jwt',
      tokens.valid,
    ]);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.match(allowed.stdout, /authenticate +passed +JWT of bookinfo-sample@trellis\.dev\/alice/);
    assert.match(allowed.stdout, /forwarded to the app of productpage-v1-0\.default \(port 9080\)/);
    const json = mesh.cli([
      'why',
      'productpage',
      'GET',
      'http://reviews:9080/reviews/0',
      '-H',
      'x-block: yes',
      '-o',
      'json',
    ]);
    assert.equal(json.code, 1);
    const parsed = JSON.parse(json.stdout) as { outcomes: Outcome[] };
    assert.deepEqual(parsed.outcomes, [
      {
        proxy: 'reviews-v1-0.default',
        answered: {
          status: 403,
          flag: 'RBAC',
          reason: 'AuthorizationPolicy default/block-header rules[0] (DENY)',
        },
      },
    ]);
    const bad = mesh.cli(['why', 'nosuch', 'GET', 'http://details:9080/']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /no workload with a sidecar is called "nosuch"/);
  });

  test("the sample's require-jwt: the gateway lets in only requests with a valid token, and why says so", async () => {
    const r = mesh.cli(['apply', '-f', path.join(JWT, 'require-jwt.yaml')]);
    assert.equal(r.code, 0, r.stderr);
    await mesh.converged(mesh.info.instances.length, Number(/revision (\d+)/.exec(r.stdout)![1]));
    const view = await meshView(await connect({ api: mesh.api, stateDir: mesh.stateDir }));
    const gatewayPort = Number(new URL(mesh.gateway).port);
    for (const [headers, status] of [
      [{}, 403],
      [{ authorization: `Bearer ${tokens.valid}` }, 200],
    ] as const) {
      const row: Row = { source: 'external', method: 'GET', target: '/productpage', headers };
      const seen = await send(row, gatewayPort);
      const ends = outcomes((await why(view, { ...row, url: `${mesh.gateway}/productpage` })).hops);
      if (status === 200) {
        assert.deepEqual(seen, { app: 200 });
        assert.ok('app' in ends[0]);
      } else {
        assert.deepEqual(seen, { answered: { status: 403, flag: 'RBAC' } });
        assert.deepEqual(expected(ends[0], true), seen);
        assert.ok('answered' in ends[0] && /istio-system\/require-jwt/.test(ends[0].answered.reason));
      }
    }
  });
});
