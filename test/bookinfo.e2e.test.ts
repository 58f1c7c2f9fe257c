// Bookinfo end to end, driven like a user: `trellis up`, curl the gateway, `trellis apply`, read
// proxy-status and metrics, kill things. One mesh for the whole file; the steps build on each other.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { Mesh, page, ROOT, reviewsVersion, until } from './support/mesh.ts';

const NET = path.join(ROOT, 'samples/bookinfo/networking');
let mesh: Mesh;

/** Loads the product page `n` times; every load must be a full page. Returns the versions seen. */
async function loads(n: number, init?: RequestInit): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = await page(`${mesh.gateway}/productpage`, init);
    assert.equal(p.status, 200, p.text.slice(0, 300));
    assert.match(p.text, /Comedy of Errors/i);
    assert.doesNotMatch(p.text, /product reviews are currently unavailable/);
    seen.push(reviewsVersion(p.text) ?? 'none');
  }
  return seen;
}

/**
 * Until the ingress gateway has a listener on container port `port` with route table `table`. (An
 * apply that changes nothing for it is not pushed again, so its revision says nothing.)
 */
async function waitForListener(port: number, table = `http.${port}`): Promise<void> {
  const gw = mesh.info.instances.find((i) => i.role === 'gateway')!;
  await until(`the gateway to listen on ${port} with route table ${table}`, async () => {
    const snap = (await (await fetch(`http://127.0.0.1:${gw.adminPort}/config_dump`)).json()) as {
      listeners: { type: string; port: number; routeTable: string }[];
    } | null;
    return snap?.listeners.some((l) => l.type === 'gateway' && l.port === port && l.routeTable === table);
  });
}

function apply(file: string): number {
  const r = mesh.cli(['apply', '-f', file]);
  assert.equal(r.code, 0, `apply ${file}: ${r.stderr}${r.stdout}`);
  const rev = /revision (\d+)/.exec(r.stdout);
  assert.ok(rev, `apply prints the revision: ${r.stdout}`);
  return Number(rev[1]);
}

describe('Bookinfo on trellis up', { timeout: 300_000 }, () => {
  before(async () => {
    // A short certificate lifetime so that rotation happens many times while the tests run.
    mesh = await Mesh.up('samples/bookinfo', ['--workload-cert-ttl', '6s']);
  });
  after(async () => {
    const pids = mesh?.info.instances.flatMap((i) => [i.id]) ?? [];
    await mesh?.down();
    // Ctrl-C leaves no process behind.
    for (const id of pids) {
      for (const kind of ['proxy', 'app']) {
        let pid: number;
        try {
          pid = mesh.pid(`${id}.${kind}`);
        } catch {
          continue;
        }
        assert.throws(
          () => process.kill(pid, 0),
          `${kind} of ${id} (pid ${pid}) still runs after trellis up stopped`,
        );
      }
    }
  });

  test('the product page shows details and reviews, and repeated loads reach v1, v2 and v3', async () => {
    const seen = new Set(await loads(9));
    assert.deepEqual([...seen].sort(), ['v1', 'v2', 'v3']);
    const p = await page(`${mesh.gateway}/productpage`);
    assert.match(p.text, /Reviews served by:/);
    // The gateway's own answers carry a flag, but rule names stay inside (in its log and metrics).
    const missing = await page(`${mesh.gateway}/no-such-page`);
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get('x-trellis-response-flags'), 'NR');
    assert.equal(missing.headers.get('x-trellis-rule'), null);
  });

  test("Istio's bookinfo-gateway.yaml, unchanged, is served at the printed URL; so is a server on Service port 80", async () => {
    // Istio's file names the container port 8080; the URL trellis up prints is Service port 80's
    // host port, which leads to the same container port.
    assert.match(mesh.output, new RegExp(`ingress gateway\\s+${mesh.gateway}`));
    apply(path.join(NET, 'bookinfo-gateway.yaml'));
    await waitForListener(8080);
    await loads(3);
    // Istio's older file said port 80: the Service maps it to targetPort 8080, the same listener.
    const older = readFileSync(path.join(NET, 'bookinfo-gateway.yaml'), 'utf8').replace(
      'number: 8080',
      'number: 80',
    );
    const file = path.join(mesh.stateDir, 'bookinfo-gateway-port-80.yaml');
    writeFileSync(file, older);
    apply(file);
    await waitForListener(8080, 'http.80');
    await loads(3);
    apply(path.join(NET, 'bookinfo-gateway.yaml'));
    await waitForListener(8080);
  });

  test('a second trellis up on the same state directory refuses and leaves the running mesh alone', () => {
    const r = spawnSync(
      process.execPath,
      [
        path.join(ROOT, 'src/cli/main.ts'),
        'up',
        'samples/bookinfo',
        '--state-dir',
        mesh.stateDir,
        '--api-port',
        '0',
        '--xds-port',
        '0',
        '--gateway-port',
        '0',
      ],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /a mesh is already running from .* \(control plane pid \d+\)/);
    assert.equal(mesh.cli(['proxy-status']).code, 0, 'the running mesh is still reachable');
  });

  test('sidecars speak mTLS with SPIFFE identities; plaintext and foreign certificates are refused', async () => {
    const reviews = mesh.instance('reviews-v2');
    // Plaintext HTTP to the inbound listener never reaches the app.
    const plain = await new Promise<string>((resolve) => {
      const req = http.get(
        { host: '127.0.0.1', port: reviews.inboundPort, path: '/reviews/0', timeout: 3000 },
        (res) => resolve(`status ${res.statusCode}`),
      );
      req.on('error', (e) => resolve(`error ${e.message}`));
      req.on('timeout', () => req.destroy(new Error('timeout')));
    });
    assert.match(plain, /^error/, `plaintext must be refused, got ${plain}`);
    // TLS without a client certificate: the handshake fails.
    const root = readFileSync(mesh.controlPlane().rootCert, 'utf8');
    const noCert = await new Promise<string>((resolve) => {
      const s = tls.connect(
        {
          host: '127.0.0.1',
          port: reviews.inboundPort,
          ca: root,
          servername: 'outbound_.9080_._.reviews.default.svc.cluster.local',
          checkServerIdentity: () => undefined,
        },
        () => {
          s.write('GET /reviews/0 HTTP/1.1\r\nhost: reviews\r\n\r\n');
        },
      );
      s.on('data', (d) => resolve(`data ${d.toString().slice(0, 20)}`));
      s.on('error', (e) => resolve(`error ${e.message}`));
      s.on('close', () => resolve('closed'));
    });
    assert.doesNotMatch(
      noCert,
      /^data/,
      `a client without a certificate must not get an answer, got ${noCert}`,
    );
    // The server presents the SPIFFE identity of its service account.
    const peer = await new Promise<X509Certificate>((resolve, reject) => {
      const s = tls.connect(
        {
          host: '127.0.0.1',
          port: reviews.inboundPort,
          ca: root,
          servername: 'x',
          checkServerIdentity: () => undefined,
        },
        () => {
          resolve(s.getPeerX509Certificate()!);
          s.destroy();
        },
      );
      s.on('error', (e) => (e.message.includes('certificate') ? undefined : reject(e)));
    });
    assert.equal(peer.subjectAltName, 'URI:spiffe://cluster.local/ns/default/sa/bookinfo-reviews');
    // Both ends of each hop report the peer's identity and mutual TLS in Istio's metrics.
    const metrics = await (await fetch(`http://127.0.0.1:${reviews.adminPort}/stats/prometheus`)).text();
    assert.match(
      metrics,
      /istio_requests_total\{reporter="destination",source_workload="productpage-v1",[^}]*source_principal="spiffe:\/\/cluster.local\/ns\/default\/sa\/bookinfo-productpage"[^}]*destination_principal="spiffe:\/\/cluster.local\/ns\/default\/sa\/bookinfo-reviews"[^}]*connection_security_policy="mutual_tls"\} \d+/,
    );
    const gwMetrics = await (
      await fetch(`http://127.0.0.1:${mesh.instance('istio-ingressgateway').adminPort}/stats/prometheus`)
    ).text();
    assert.match(
      gwMetrics,
      /istio_requests_total\{reporter="source",source_workload="istio-ingressgateway",[^}]*destination_workload="productpage-v1"[^}]*response_code="200"/,
    );
  });

  test('destination rules + all-v1: only v1 from then on, every proxy ACKs the new version', async () => {
    apply(path.join(NET, 'destination-rule-all.yaml'));
    const revision = apply(path.join(NET, 'virtual-service-all-v1.yaml'));
    const s = await mesh.converged(mesh.info.instances.length, revision);
    assert.ok(s.convergence, 'proxy-status reports the convergence time');
    console.log(
      `# apply → all ${s.convergence.proxies} proxies ACKed: ${s.convergence.ms} ms (revision ${s.convergence.revision})`,
    );
    const ps = mesh.cli(['proxy-status']);
    assert.equal(ps.code, 0, ps.stderr);
    assert.match(ps.stdout, /SYNCED/);
    assert.doesNotMatch(ps.stdout, /STALE|NACKED/);
    assert.deepEqual(new Set(await loads(12)), new Set(['v1']));
  });

  test('jason is routed to v2 (black stars), everyone else to v1', async () => {
    const revision = apply(path.join(NET, 'virtual-service-reviews-test-v2.yaml'));
    await mesh.converged(mesh.info.instances.length, revision);
    const login = await fetch(`${mesh.gateway}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'username=jason&passwd=jason',
      redirect: 'manual',
    });
    assert.equal(login.status, 302);
    const cookie = login.headers.get('set-cookie')!.split(';')[0];
    for (let i = 0; i < 6; i++) {
      const p = await page(`${mesh.gateway}/productpage`, { headers: { cookie } });
      assert.equal(reviewsVersion(p.text), 'v2');
      assert.match(p.text, /font color="black"/);
    }
    assert.deepEqual(new Set(await loads(6)), new Set(['v1']));
    // A client cannot claim to be jason with a header: productpage takes the user from its session.
    assert.deepEqual(new Set(await loads(4, { headers: { 'end-user': 'jason' } })), new Set(['v1']));
  });

  test('50/50 between v1 and v3 splits 200 requests within statistical bounds', async () => {
    const revision = apply(path.join(NET, 'virtual-service-reviews-50-v3.yaml'));
    await mesh.converged(mesh.info.instances.length, revision);
    const seen = await loads(200);
    const v1 = seen.filter((v) => v === 'v1').length;
    const v3 = seen.filter((v) => v === 'v3').length;
    assert.equal(v1 + v3, 200, `only v1 and v3 expected, saw ${[...new Set(seen)]}`);
    // Binomial(200, 0.5): σ ≈ 7.07; ±35 is 5σ, a false failure about once in two million runs.
    assert.ok(Math.abs(v1 - 100) <= 35, `v1=${v1} v3=${v3}`);
    console.log(`# 50/50 split over 200 requests: v1=${v1} v3=${v3}`);
  });

  test('killing ratings: the page says ratings are unavailable, ratings restarts, its endpoint leaves and returns', async () => {
    apply(path.join(NET, 'destination-rule-all.yaml'));
    const revision = apply(path.join(NET, 'virtual-service-reviews-v3.yaml'));
    await mesh.converged(mesh.info.instances.length, revision);
    assert.match((await page(`${mesh.gateway}/productpage`)).text, /font color="red"/);
    const ratingsEndpointHealthy = async () => {
      const snap = (await (
        await fetch(`${mesh.api}/api/v1/proxy-config/reviews-v3-0.default`, { headers: mesh.auth })
      ).json()) as {
        clusters: { service?: string; endpoints: { healthy: boolean }[] }[];
      };
      // Whatever subset the routes use (all-v1 may be in force), ratings has one endpoint.
      const cs = snap.clusters.filter((x) => x.service === 'ratings.default.svc.cluster.local');
      assert.ok(cs.length > 0, 'reviews-v3 has a cluster for ratings');
      return cs.every((c) => c.endpoints.length === 1 && c.endpoints[0].healthy);
    };
    assert.equal(await ratingsEndpointHealthy(), true);
    const pid = mesh.pid('ratings-v1-0.default.app');
    process.kill(pid, 'SIGKILL');
    let sawUnavailable = false;
    let sawEndpointLeave = false;
    await until(
      'ratings to come back',
      async () => {
        const p = await page(`${mesh.gateway}/productpage`);
        // Nothing but ratings may fail meanwhile.
        assert.equal(p.status, 200);
        assert.match(p.text, /Comedy of Errors/i);
        assert.equal(reviewsVersion(p.text), 'v3');
        if (/Ratings service is currently unavailable/.test(p.text)) sawUnavailable = true;
        if (!(await ratingsEndpointHealthy())) sawEndpointLeave = true;
        const back = mesh.pid('ratings-v1-0.default.app') !== pid && /font color="red"/.test(p.text);
        return back && (await ratingsEndpointHealthy());
      },
      30_000,
      50,
    );
    assert.ok(sawUnavailable, 'the page showed ratings unavailable while ratings was down');
    assert.ok(sawEndpointLeave, 'the ratings endpoint left the mesh while ratings was down');
  });

  test('stopping the control plane under traffic: traffic flows, proxies resync, state and CA root survive', async () => {
    const rootBefore = readFileSync(mesh.controlPlane().rootCert, 'utf8');
    const cpPid = mesh.pid('control-plane');
    let failures = 0;
    let served = 0;
    let running = true;
    let cpDownServed = 0;
    let cpDown = false;
    const traffic = (async () => {
      while (running) {
        const p = await page(`${mesh.gateway}/productpage`);
        if (p.status === 200 && /font color="red"/.test(p.text)) {
          served++;
          if (cpDown) cpDownServed++;
        } else failures++;
      }
    })();
    process.kill(cpPid, 'SIGKILL');
    cpDown = true;
    await until(
      'the supervisor to restart the control plane',
      async () => mesh.pid('control-plane') !== cpPid,
      20_000,
    );
    cpDown = false;
    const s = await mesh.converged(mesh.info.instances.length, 0, 30_000);
    assert.ok(s.proxies.every((p) => Date.parse(p.connectedAt) > 0));
    running = false;
    await traffic;
    assert.equal(failures, 0, `${failures} requests failed while the control plane was away`);
    assert.ok(cpDownServed > 0, 'requests were served while the control plane was down');
    assert.equal(readFileSync(mesh.controlPlane().rootCert, 'utf8'), rootBefore, 'the CA root survived');
    const vs = mesh.cli(['get', 'virtualservice', 'reviews', '-o', 'json']);
    assert.equal(vs.code, 0, vs.stderr);
    assert.match(vs.stdout, /"subset": "v3"/);
    console.log(
      `# control plane down: ${cpDownServed} requests served without it, ${served} in all, 0 failed`,
    );
  });

  test('certificates rotate several times under continuous traffic with zero failed requests', async () => {
    const issued = async () =>
      Promise.all(
        mesh.info.instances.map(
          async (i) =>
            ((await (await fetch(`http://127.0.0.1:${i.adminPort}/certs`)).json()) as { issued: number })
              .issued,
        ),
      );
    const before = await issued();
    const deadline = Date.now() + 14_000;
    let ok = 0;
    while (Date.now() < deadline) {
      const p = await page(`${mesh.gateway}/productpage`);
      assert.equal(p.status, 200);
      assert.match(p.text, /font color="red"/);
      ok++;
    }
    const afterCount = await issued();
    const rotations = afterCount.map((n, i) => n - before[i]);
    // 6 s certificates renewed at half-life: about four renewals in 14 s.
    assert.ok(
      rotations.every((r) => r >= 2),
      `rotations per proxy during the window: ${rotations}`,
    );
    console.log(
      `# ${ok} requests, 0 failed, while each proxy renewed its certificate ${Math.min(...rotations)}-${Math.max(...rotations)} times`,
    );
  });

  test('invalid input: apply exits non-zero with file:line and field path, and changes nothing', async () => {
    const before = (
      (await (await fetch(`${mesh.api}/api/v1/version`, { headers: mesh.auth })).json()) as {
        revision: number;
      }
    ).revision;
    const dir = mesh.stateDir;
    const cases: [string, string, RegExp][] = [
      [
        'bad-yaml.yaml',
        'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x\nspec: {}\n',
        /bad-yaml\.yaml:\d+/,
      ],
      [
        'unknown-field.yaml',
        'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  hosts: [reviews]\n  htttp:\n  - route: [{destination: {host: reviews}}]\n',
        /unknown-field\.yaml:6:\d+.*spec\.htttp.*did you mean "http"/,
      ],
      [
        'wrong-type.yaml',
        'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  hosts: reviews\n',
        /wrong-type\.yaml:5:\d+.*spec\.hosts/,
      ],
      [
        'bad-regex.yaml',
        'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  hosts: [reviews]\n  http:\n  - match:\n    - uri: {regex: "/a(b"}\n    route: [{destination: {host: reviews}}]\n',
        /bad-regex\.yaml:8:\d+.*spec\.http\[0\]\.match\[0\]\.uri\.regex/,
      ],
    ];
    for (const [name, text, expected] of cases) {
      const file = path.join(dir, name);
      writeFileSync(file, text);
      const r = mesh.cli(['apply', '-f', file]);
      assert.notEqual(r.code, 0, `${name} must fail`);
      assert.match(r.stderr, expected, `${name}: ${r.stderr}`);
    }
    const after = (
      (await (await fetch(`${mesh.api}/api/v1/version`, { headers: mesh.auth })).json()) as {
        revision: number;
      }
    ).revision;
    assert.equal(after, before, 'the store is unchanged');
  });

  test('a snapshot the gateway cannot run is NACKed with the reason and the previous config keeps serving', async () => {
    // Hold a port, then ask the gateway to listen on it.
    const holder = net.createServer();
    const port = await new Promise<number>((r) =>
      holder.listen(0, '127.0.0.1', () => r((holder.address() as net.AddressInfo).port)),
    );
    const file = path.join(mesh.stateDir, 'busy-gateway.yaml');
    writeFileSync(
      file,
      `apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: busy, namespace: default}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: ${port}, name: http-busy, protocol: HTTP}\n    hosts: ["*"]\n`,
    );
    apply(file);
    const s = await until('the gateway to NACK', async () => {
      const st = await mesh.status();
      const gw = st.proxies.find((p) => p.id.startsWith('istio-ingressgateway'));
      return gw?.status === 'NACKED' ? gw : undefined;
    });
    assert.match(s.nack!.reason, /EADDRINUSE/);
    const ps = mesh.cli(['proxy-status']);
    assert.match(ps.stdout, /NACKED/);
    assert.match(ps.stdout + ps.stderr, /EADDRINUSE/);
    // The gateway still serves with its previous snapshot.
    assert.equal((await page(`${mesh.gateway}/productpage`)).status, 200);
    const del = mesh.cli(['delete', '-f', file]);
    assert.equal(del.code, 0, del.stderr);
    await mesh.converged(mesh.info.instances.length);
    holder.close();
  });
});
