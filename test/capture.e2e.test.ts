// Transparent capture (`trellis up --capture=netns`): apps that know nothing of the mesh — no proxy
// settings, bound to 0.0.0.0, one of them not Node — reach their peers by plain name through their
// sidecars; nothing reaches an app around its sidecar; and a SIGKILLed `trellis up` leaves nothing
// running.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { captureUnavailable } from '../src/platform/capture-network.ts';
import { Mesh, page, ROOT, until } from './support/mesh.ts';

const run = promisify(execFile);
const unavailable = await captureUnavailable();
const skip = unavailable ? `transparent capture needs root, ip and nft: ${unavailable}` : false;
const PYTHON = ['/usr/bin/python3', '/usr/local/bin/python3'].find((p) => existsSync(p));

// A TCP echo (not HTTP): every byte back, then the end when the client ends.
const ECHO = `require('node:net').createServer({ allowHalfOpen: true }, (c) => c.pipe(c)).listen(Number(process.argv[2]), '0.0.0.0');`;

// A Python stdlib app that has never heard of a mesh: it listens on 0.0.0.0 on the port in its argv
// (`$(PORT)` in the mesh file) and calls `http://details:9080` with no proxy settings.
const FRONT = `
import http.server, socket, sys, urllib.request
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == '/health':
            body = b'ok'
        elif self.path == '/tcp':
            # A plain TCP protocol to the echo service, by name: captured and proxied as bytes.
            with socket.create_connection(('echo', 9000), timeout=5) as c:
                c.sendall(b'ping through the mesh\\n')
                c.shutdown(socket.SHUT_WR)
                body = b''
                while True:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    body += chunk
        else:
            with urllib.request.urlopen('http://details:9080/details/7', timeout=5) as r:
                body = r.read()
        self.send_response(200)
        self.send_header('content-type', 'application/json')
        self.send_header('content-length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(('0.0.0.0', int(sys.argv[1])), Handler).serve_forever()
`;

function meshFile(dir: string): string {
  const bookinfo = path.join(ROOT, 'samples/bookinfo');
  return `
apiVersion: v1
kind: Service
metadata: { name: details, namespace: default }
spec:
  selector: { app: details }
  ports: [{ name: http, port: 9080 }]
---
apiVersion: v1
kind: Service
metadata: { name: front, namespace: default }
spec:
  selector: { app: front }
  ports: [{ name: http, port: 8000 }]
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: { name: details-v1, namespace: default }
spec:
  command: node
  args: [details/main.ts]
  workingDir: ${bookinfo}
  env: { BIND_ADDRESS: 0.0.0.0 }
  labels: { app: details, version: v1 }
  serviceAccount: details
  ports: [{ name: http, port: 9080 }]
  readinessProbe: { httpGet: { path: /health } }
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: default }
spec:
  selector: { app: echo }
  ports: [{ name: tcp-echo, port: 9000 }]
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: { name: echo-v1, namespace: default }
spec:
  command: node
  args: [echo.cjs, $(PORT)]
  workingDir: ${dir}
  labels: { app: echo, version: v1 }
  serviceAccount: echo
  ports: [{ name: tcp-echo, port: 9000, protocol: TCP }]
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: { name: front-v1, namespace: default }
spec:
  command: ${PYTHON}
  args: [front.py, $(PORT)]
  workingDir: ${dir}
  labels: { app: front, version: v1 }
  serviceAccount: front
  ports: [{ name: http, port: 8000 }]
  readinessProbe: { httpGet: { path: /health } }
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: { name: ingress, namespace: istio-system }
spec:
  role: gateway
  labels: { istio: ingressgateway }
  ports: [{ name: http, port: 80, hostPort: 0 }]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ["*"] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: front, namespace: default }
spec:
  hosts: ["*"]
  gateways: [gw]
  http: [{ route: [{ destination: { host: front, port: { number: 8000 } } }] }]
`;
}

async function meshDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-capture-'));
  // The apps run as their own users: they must read their files.
  await chmod(dir, 0o755);
  await writeFile(path.join(dir, 'front.py'), FRONT, { mode: 0o644 });
  await writeFile(path.join(dir, 'echo.cjs'), ECHO, { mode: 0o644 });
  await writeFile(path.join(dir, 'mesh.yaml'), meshFile(dir));
  return dir;
}

/** What a plain TCP client outside the netns gets from `host:port`: the first bytes, or how it ended. */
function rawGet(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    let got = '';
    s.setTimeout(5000, () => s.destroy());
    s.on('connect', () => s.write(`GET /details/1 HTTP/1.1\r\nhost: ${host}\r\n\r\n`));
    s.on('data', (c) => {
      got += c.toString();
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    s.on('close', () => resolve(got || 'closed'));
  });
}

async function counter(url: string, name: string, listener: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{listener="${listener}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('transparent capture', {
  skip: skip || (PYTHON ? false : 'no python3 for the non-Node app'),
}, () => {
  let mesh: Mesh;
  let dir: string;

  before(async () => {
    dir = await meshDir();
    mesh = await Mesh.up(dir, ['--capture=netns']);
  });
  after(async () => {
    await mesh?.down();
  });

  test('a Python app bound to 0.0.0.0, with no proxy settings, reaches details by name through its sidecar', async () => {
    assert.equal(mesh.info.capture, 'netns');
    assert.match(mesh.output, /transparent capture/);
    const front = mesh.instance('front-v1');
    assert.ok(front.netns && front.address !== '127.0.0.1', 'front runs in a netns of its own');
    const admin = `http://${front.address}:${front.adminPort}/stats/prometheus`;
    // Enough new connections (urllib opens one per call) to fill more than a page of conntrack entries.
    const rounds = 60;
    // The gateway learns front's endpoint by a push that may trail the banner by a moment.
    await until(
      'front through the gateway',
      async () => (await page(`${mesh.gateway}/health`)).status === 200,
    );
    const before = await counter(admin, 'trellis_listener_downstream_cx_total', 'outbound');
    for (let i = 0; i < rounds; i++) {
      const r = await page(`${mesh.gateway}/anything`);
      assert.equal(r.status, 200, r.text);
      assert.equal(JSON.parse(r.text).id, 7);
    }
    // Each urllib call is one connection the netns sent to the outbound listener — and only those:
    // the proxy's own connections to details are not captured again (no loop).
    const outbound = (await counter(admin, 'trellis_listener_downstream_cx_total', 'outbound')) - before;
    assert.equal(outbound, rounds);
    // The request really went through both sidecars, over mTLS.
    const details = mesh.instance('details-v1');
    const metrics = await (
      await fetch(`http://${details.address}:${details.adminPort}/stats/prometheus`)
    ).text();
    assert.match(
      metrics,
      /istio_requests_total\{[^}]*source_workload="front-v1"[^}]*connection_security_policy="mutual_tls"/,
    );
  });

  test('a plain TCP protocol to a service by name is captured and proxied as bytes, over mTLS', async () => {
    const r = await page(`${mesh.gateway}/tcp`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, 'ping through the mesh\n');
    const echo = mesh.instance('echo-v1');
    const metrics = await (await fetch(`http://${echo.address}:${echo.adminPort}/stats/prometheus`)).text();
    assert.match(
      metrics,
      /istio_tcp_connections_opened_total\{[^}]*source_workload="front-v1"[^}]*connection_security_policy="mutual_tls"/,
    );
  });

  test('an app port is not reachable around the sidecar from outside its netns', async () => {
    for (const w of ['details-v1', 'front-v1', 'echo-v1']) {
      const i = mesh.instance(w);
      const got = await rawGet(i.address, i.appPort!);
      assert.doesNotMatch(got, /^HTTP\//, `${w}: a plaintext client got an answer: ${got}`);
    }
  });

  test('the app needs no proxy in its environment', async () => {
    const pid = mesh.pid('front-v1-0.default.app');
    const environ = (await readFile(`/proc/${pid}/environ`, 'latin1')).split('\0');
    assert.equal(
      environ.find((e) => /^(HTTP_PROXY|http_proxy)=/.test(e)),
      undefined,
    );
  });
});

describe('a SIGKILLed trellis up', { skip }, () => {
  test('leaves no process and no listening port; the next up on its state dir starts cleanly', {
    timeout: 180_000,
  }, async () => {
    const dir = await meshDir();
    const first = await Mesh.up(dir, ['--capture=netns']);
    const pids = ['details-v1-0.default.app', 'front-v1-0.default.app', 'details-v1-0.default.proxy'].map(
      (n) => first.pid(n),
    );
    const namespaces = first.info.instances.flatMap((i) => (i.netns ? [i.netns] : []));
    const ports = first.info.instances.flatMap((i) => (i.appPort ? [[i.address, i.appPort] as const] : []));
    const exited = new Promise((r) => first.child.once('exit', r));
    first.child.kill('SIGKILL');
    await exited;
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await until(
      'every app and proxy to die with trellis up',
      async () => pids.every((p) => !alive(p)),
      10_000,
    );
    for (const [host, port] of ports) {
      const got = await rawGet(host, port);
      assert.doesNotMatch(got, /^HTTP\//, `${host}:${port} still answers`);
    }

    // The next `up` on the same state dir clears what was left (netns, bridge, tables) and runs.
    const second = await Mesh.up(dir, ['--capture=netns'], first.stateDir);
    try {
      const { stdout } = await run('ip', ['netns', 'list']);
      const fresh = new Set(second.info.instances.flatMap((i) => (i.netns ? [i.netns] : [])));
      for (const ns of namespaces)
        if (!fresh.has(ns)) assert.doesNotMatch(stdout, new RegExp(`^${ns} `, 'm'));
      await until(
        'front through the gateway',
        async () => (await page(`${second.gateway}/x`)).status === 200,
      );
    } finally {
      await second.down();
    }
    const { stdout } = await run('ip', ['netns', 'list']);
    for (const i of second.info.instances)
      if (i.netns) assert.doesNotMatch(stdout, new RegExp(`^${i.netns} `, 'm'));
  });
});
