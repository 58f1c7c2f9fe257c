// RequestAuthentication end to end: a real OpenID provider (oidc-provider) issues JWT access tokens by
// the client_credentials grant; the control plane fetches its JWKS over HTTP and pushes the keys; a
// real gateway and a real sidecar verify tokens on real sockets. Rotating the provider's signing key
// is picked up without restarting anything.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import type { ProxyNode } from '../src/compile/snapshot.ts';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import type { RunningProxy } from '../src/dataplane/proxy.ts';
import { SILENT } from '../src/lib/log.ts';
import { PortAllocator } from '../src/platform/ports.ts';
import { until } from './support/mesh.ts';
import { CLIENT_ID, OpenIdProvider, signingKey } from './support/oidc.ts';
import { adminHeaders, meshProxy } from './support/platform.ts';

let cp: RunningControlPlane;
let op: OpenIdProvider;
let echo: http.Server;
let echoProxy: RunningProxy;
let gateway: RunningProxy;
let gatewayPort: number;
/** What the app received last, by path. */
const seen = new Map<string, { url: string; headers: http.IncomingHttpHeaders }>();

const mesh = (issuer: string, jwksUri: string) => `
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: edge}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge}
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
  - match:
    - uri: {prefix: /claims}
      headers: {"@request.auth.claims.client_id": {exact: ${CLIENT_ID}}}
    directResponse: {status: 200, body: {string: "routed by claim"}}
  - match: [{uri: {prefix: /claims}}]
    directResponse: {status: 200, body: {string: "no claim"}}
  - route: [{destination: {host: echo.default.svc.cluster.local, port: {number: 8080}}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: edge}
spec:
  selector: {matchLabels: {istio: edge}}
  jwtRules:
  - issuer: ${issuer}
    jwksUri: ${jwksUri}
    audiences: [bookinfo]
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{header: x-jwt-client, claim: client_id}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: echo}
spec:
  selector: {matchLabels: {app: echo}}
  jwtRules:
  - issuer: ${issuer}
    jwksUri: ${jwksUri}
    fromCookies: [session]
    fromHeaders: [{name: X-Jwt-Assertion, prefix: "Token "}]
    forwardOriginalToken: true
`;

async function proxy(node: Omit<ProxyNode, 'healthy' | 'address'>, appPort?: number): Promise<RunningProxy> {
  return meshProxy(cp.info, node, { appPort, log: SILENT });
}

interface Reply {
  status: number;
  headers: Headers;
  body: string;
}

async function get(target: string, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(`http://127.0.0.1:${gatewayPort}${target}`, { headers });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** A token signed with the provider's own key, with claims the provider would not issue. */
async function handMade(claims: Record<string, unknown>, key = op.key): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: op.issuer,
    sub: CLIENT_ID,
    client_id: CLIENT_ID,
    aud: 'bookinfo',
    iat: now,
    ...claims,
  })
    .setProtectedHeader({ alg: 'RS256', kid: key.jwk.kid })
    .sign(key.privateKey);
}

describe('RequestAuthentication with a real OpenID provider', { timeout: 120_000 }, () => {
  before(async () => {
    op = await OpenIdProvider.start();
    cp = await startControlPlane({
      stateDir: await mkdtemp(path.join(tmpdir(), 'trellis-jwt-')),
      host: '127.0.0.1',
      apiPort: 0,
      xdsPort: 0,
      trustDomain: 'cluster.local',
      version: 'test',
      jwksRefreshMs: 200,
      jwksRetryMs: 100,
      log: SILENT,
    });
    const res = await fetch(`${cp.info.api}/api/v1/apply`, {
      method: 'POST',
      headers: adminHeaders(cp.info),
      body: JSON.stringify({ sources: [{ file: 'mesh.yaml', text: mesh(op.issuer, op.jwksUri) }] }),
    });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    const { warnings } = JSON.parse(text) as { warnings: unknown[] };
    assert.deepEqual(warnings, [], 'RequestAuthentication and claim matches are enforced: no warnings');
    echo = http.createServer((req, res) => {
      seen.set(new URL(req.url ?? '/', 'http://x').pathname, { url: req.url ?? '', headers: req.headers });
      res.end(`echo ${req.url}`);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoProxy = await proxy(
      {
        id: 'echo-0',
        role: 'sidecar',
        workload: 'echo',
        namespace: 'default',
        serviceAccount: 'echo',
        labels: { app: 'echo' },
        ports: [{ name: 'http', port: 8080 }],
      },
      (echo.address() as AddressInfo).port,
    );
    gatewayPort = await new PortAllocator().next();
    gateway = await proxy({
      id: 'edge-0',
      role: 'gateway',
      workload: 'edge',
      namespace: 'default',
      serviceAccount: 'edge',
      labels: { istio: 'edge' },
      ports: [],
      gatewayPorts: { '80': gatewayPort },
    });
    await until('the gateway and the sidecar to run the provider keys', async () => {
      const withKeys = (p: RunningProxy) =>
        p
          .current()
          ?.listeners.some((l) => (l.type === 'gateway' || l.type === 'inbound') && l.jwtRules?.[0]?.jwks);
      return withKeys(gateway) && withKeys(echoProxy) && (await get('/ready')).status === 200;
    });
  });

  after(async () => {
    await gateway?.close();
    await echoProxy?.close();
    await cp?.close();
    echo?.close();
    await op?.close();
  });

  test('no token: passes authentication (authorization decides); client-set output headers are dropped', async () => {
    const r = await get('/none', { 'x-jwt-client': 'forged', 'x-jwt-payload': 'forged' });
    assert.equal(r.status, 200, r.body);
    assert.equal(seen.get('/none')?.headers['x-jwt-client'], undefined);
    assert.equal(seen.get('/none')?.headers['x-jwt-payload'], undefined);
  });

  test('a token from the provider is allowed; claims go upstream, the token does not', async () => {
    const token = await op.token();
    const r = await get('/valid', bearer(token));
    assert.equal(r.status, 200, r.body);
    const h = seen.get('/valid')!.headers;
    assert.equal(h['x-jwt-client'], CLIENT_ID);
    assert.equal(h.authorization, undefined, 'forwardOriginalToken is false: stripped');
    const payload = JSON.parse(Buffer.from(h['x-jwt-payload'] as string, 'base64url').toString());
    assert.equal(payload.iss, op.issuer);
    assert.equal(payload.aud, 'bookinfo');
    // Again: from the cache, same answer.
    assert.equal((await get('/valid', bearer(token))).status, 200);
    // The default parameter location; it is stripped too.
    assert.equal((await get(`/param?access_token=${token}&keep=1`)).status, 200);
    assert.equal(seen.get('/param')!.url, '/param?keep=1');
  });

  test("expired, forged and wrong-audience tokens are refused with Envoy's answers", async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await get('/x', bearer(await handMade({ exp: now - 120 })));
    assert.equal(expired.status, 401);
    assert.equal(expired.body, 'Jwt is expired');
    assert.match(
      expired.headers.get('www-authenticate') ?? '',
      /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/x", error="invalid_token"$/,
    );
    const forger = await signingKey(op.key.jwk.kid!);
    const forged = await get('/x', bearer(await handMade({ exp: now + 300 }, forger)));
    assert.equal(forged.status, 401);
    assert.equal(forged.body, 'Jwt verification fails');
    // Envoy answers a token for another audience with 403.
    const other = await get('/x', bearer(await op.token('urn:other')));
    assert.equal(other.status, 403);
    assert.equal(other.body, 'Audiences in Jwt are not allowed');
    const garbage = await get('/x', bearer('not-a-jwt'));
    assert.equal(garbage.status, 401);
    assert.match(garbage.body, /^Jwt is not in the form/);
    assert.equal(seen.has('/x'), false, 'none reached the app');
    assert.equal(garbage.headers.get('x-trellis-rule'), null, 'outside clients never see rule names');
  });

  test('claims route at the gateway', async () => {
    assert.equal((await get('/claims', bearer(await op.token()))).body, 'routed by claim');
    assert.equal((await get('/claims')).body, 'no claim');
  });

  test('the sidecar verifies its own rules: a cookie and a header the gateway does not look at', async () => {
    const token = await op.token();
    const ok = await get('/cookie', { cookie: `a=b; session=${token}` });
    assert.equal(ok.status, 200, ok.body);
    assert.match(seen.get('/cookie')!.headers.cookie as string, /session=/, 'forwardOriginalToken: kept');
    const forger = await signingKey(op.key.jwk.kid!);
    const forged = await handMade({}, forger);
    const bad = await get('/cookie-forged', { cookie: `session=${forged}` });
    assert.equal(bad.status, 401);
    assert.equal(bad.body, 'Jwt verification fails');
    assert.equal((await get('/header', { 'x-jwt-assertion': `Token ${token}` })).status, 200);
    assert.equal((await get('/header', { 'x-jwt-assertion': `Token ${forged}` })).status, 401);
    const otherPrefix = await get('/header-other', { 'x-jwt-assertion': `Bearer ${forged}` });
    assert.equal(otherPrefix.status, 200, 'without the prefix it is no token at this location');
  });

  test("the provider's key rotation is picked up without a restart", async () => {
    const old = await op.token();
    assert.equal((await get('/before', bearer(old))).status, 200);
    await op.rotate('key-2');
    const fresh = await op.token();
    assert.notEqual(fresh, old);
    await until(
      'the new key to reach the gateway',
      async () => (await get('/after', bearer(fresh))).status === 200,
    );
    // The old key is gone from the provider's JWKS, and so from the gateway: its cached tokens with it.
    const stale = await get('/stale', bearer(old));
    assert.equal(stale.status, 401);
    assert.equal(stale.body, "Jwks doesn't have key to match kid or alg from Jwt");
  });
});
