// End-to-end tests of the httpbin sample: main.ts runs as a real child process on a free loopback
// port (no mesh, no proxy), and load.ts's runLoad counts its answers in-process.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { formatResult, parseArgs, runLoad } from './load.ts';

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

const here = dirname(fileURLToPath(import.meta.url));
const START_TIMEOUT_MS = 15_000;

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The test's environment minus what would change how httpbin or the load client behaves. */
function baseEnv(): Record<string, string> {
  const drop =
    /^(https?_proxy|no_proxy|all_proxy|node_use_env_proxy|node_test_context|port|bind_address|service_version)$/i;
  return Object.fromEntries(
    Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !drop.test(e[0])),
  );
}

interface Httpbin {
  url: string;
  child: ChildProcess;
  stop(): Promise<number | null>;
}

const running: Httpbin[] = [];

async function start(env: Record<string, string> = {}): Promise<Httpbin> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(here, 'main.ts')], {
    cwd: here,
    env: { ...baseEnv(), ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const svc: Httpbin = {
    url: `http://127.0.0.1:${port}`,
    child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  running.push(svc);
  let stdout = '';
  child.stdout!.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`httpbin did not start; stderr: ${stderr}`)),
      START_TIMEOUT_MS,
    );
    child.stdout!.on('data', (d: string) => {
      stdout += d;
      if (stdout.includes(`httpbin listening on ${port}`)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`httpbin exited with ${code} before listening; stderr: ${stderr}`));
    });
  });
  return svc;
}

async function get(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(15_000), ...init });
}

async function getJson(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Json; res: Response }> {
  const res = await get(url, init);
  return { status: res.status, body: await res.json(), res };
}

after(async () => {
  await Promise.all(running.map((s) => s.stop()));
});

describe('httpbin endpoints', () => {
  let bin: Httpbin;
  before(async () => {
    bin = await start({ SERVICE_VERSION: 'v2' });
  });

  it('answers /health and tags every response with x-httpbin-version', async () => {
    const { status, body, res } = await getJson(`${bin.url}/health`);
    assert.equal(status, 200);
    assert.equal(body.version, 'v2');
    assert.equal(res.headers.get('x-httpbin-version'), 'v2');
    const missing = await get(`${bin.url}/nowhere`);
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get('x-httpbin-version'), 'v2');
    await missing.arrayBuffer();
  });

  it('/get echoes args (repeats as lists), Title-Cased headers, origin and url', async () => {
    const { status, body, res } = await getJson(`${bin.url}/get?a=1&a=2&b=x`, {
      headers: { 'x-b3-traceid': 'abc', 'user-agent': 'test-agent' },
    });
    assert.equal(status, 200);
    assert.match(res.headers.get('content-type')!, /^application\/json/);
    assert.deepEqual(Object.keys(body).sort(), ['args', 'headers', 'origin', 'url']);
    assert.deepEqual(body.args, { a: ['1', '2'], b: 'x' });
    assert.equal(body.headers['X-B3-Traceid'], 'abc');
    assert.equal(body.headers['User-Agent'], 'test-agent');
    assert.equal(body.headers.Host, new URL(bin.url).host);
    assert.equal(body.origin, '127.0.0.1');
    assert.equal(body.url, `${bin.url}/get?a=1&a=2&b=x`);
    const forwarded = await getJson(`${bin.url}/get`, { headers: { 'x-forwarded-for': '10.1.2.3' } });
    assert.equal(forwarded.body.origin, '10.1.2.3');
    assert.equal((await get(`${bin.url}/get`, { method: 'POST' })).status, 405);
  });

  it('/post, /put, /patch and /delete report data, json, form and files', async () => {
    const keys = ['args', 'data', 'files', 'form', 'headers', 'json', 'origin', 'url'];
    const json = await getJson(`${bin.url}/post?q=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":[1,2]}',
    });
    assert.deepEqual(Object.keys(json.body).sort(), keys);
    assert.equal(json.body.data, '{"a":[1,2]}');
    assert.deepEqual(json.body.json, { a: [1, 2] });
    assert.deepEqual(json.body.args, { q: '1' });
    assert.deepEqual(json.body.form, {});

    const form = await getJson(`${bin.url}/put`, { method: 'PUT', body: new URLSearchParams('x=1&x=2&y=3') });
    assert.deepEqual(form.body.form, { x: ['1', '2'], y: '3' });
    assert.equal(form.body.data, '');
    assert.equal(form.body.json, null);

    const multipart = new FormData();
    multipart.append('field', 'value');
    multipart.append('upload', new Blob(['file text']), 'a.txt');
    const parts = await getJson(`${bin.url}/patch`, { method: 'PATCH', body: multipart });
    assert.deepEqual(parts.body.form, { field: 'value' });
    assert.deepEqual(parts.body.files, { upload: 'file text' });

    const binary = await getJson(`${bin.url}/delete`, {
      method: 'DELETE',
      body: new Uint8Array([0xff, 0xfe]),
    });
    assert.equal(binary.body.data, 'data:application/octet-stream;base64,//4=');
    assert.equal((await get(`${bin.url}/post`)).status, 405);
  });

  it('/anything takes every method and adds it to the echo', async () => {
    for (const method of ['GET', 'POST', 'PUT', 'DELETE']) {
      const { status, body } = await getJson(`${bin.url}/anything/some/path?k=v`, { method });
      assert.equal(status, 200);
      assert.equal(body.method, method);
      assert.equal(body.url, `${bin.url}/anything/some/path?k=v`);
      assert.deepEqual(body.args, { k: 'v' });
    }
  });

  it('/headers, /ip, /user-agent and /uuid', async () => {
    const headers = await getJson(`${bin.url}/headers`, { headers: { 'x-custom-thing': '1' } });
    assert.deepEqual(Object.keys(headers.body), ['headers']);
    assert.equal(headers.body.headers['X-Custom-Thing'], '1');
    assert.deepEqual((await getJson(`${bin.url}/ip`)).body, { origin: '127.0.0.1' });
    const ua = await getJson(`${bin.url}/user-agent`, { headers: { 'user-agent': 'curl/8' } });
    assert.deepEqual(ua.body, { 'user-agent': 'curl/8' });
    assert.match((await getJson(`${bin.url}/uuid`)).body.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-/);
  });

  it('/status answers the code, picks among a list, and refuses a bad one', async () => {
    const teapot = await get(`${bin.url}/status/418`);
    assert.equal(teapot.status, 418);
    assert.match(await teapot.text(), /teapot/);
    const empty = await get(`${bin.url}/status/204`, { method: 'POST' });
    assert.equal(empty.status, 204);
    const moved = await get(`${bin.url}/status/302`);
    assert.equal(moved.headers.get('location'), '/redirect/1');
    await moved.arrayBuffer();

    const seen = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const res = await get(`${bin.url}/status/200,503`);
      await res.arrayBuffer();
      seen.add(res.status);
    }
    assert.deepEqual([...seen].sort(), [200, 503]);
    for (let i = 0; i < 5; i++) assert.equal((await get(`${bin.url}/status/200:0,503:1`)).status, 503);
    assert.equal((await get(`${bin.url}/status/abc`)).status, 400);
  });

  it('/delay/1 waits about a second and echoes the request', async () => {
    const t0 = performance.now();
    const { status, body } = await getJson(`${bin.url}/delay/1?x=y`);
    const elapsed = performance.now() - t0;
    assert.equal(status, 200);
    assert.deepEqual(body.args, { x: 'y' });
    assert.ok(elapsed >= 950 && elapsed < 3000, `took ${elapsed} ms`);
    assert.equal((await get(`${bin.url}/delay/soon`)).status, 404);
  });

  it('/bytes, /stream, /response-headers and /redirect', async () => {
    const bytes = await get(`${bin.url}/bytes/16`);
    assert.equal(bytes.headers.get('content-type'), 'application/octet-stream');
    assert.equal((await bytes.arrayBuffer()).byteLength, 16);
    assert.equal((await (await get(`${bin.url}/bytes/500000`)).arrayBuffer()).byteLength, 100 * 1024);

    const lines = (await (await get(`${bin.url}/stream/3`)).text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => l.id),
      [0, 1, 2],
    );
    assert.equal(lines[0].url, `${bin.url}/stream/3`);

    const rh = await getJson(`${bin.url}/response-headers?X-Thing=one&freeform=two`);
    assert.equal(rh.res.headers.get('x-thing'), 'one');
    assert.equal(rh.res.headers.get('freeform'), 'two');
    assert.equal(rh.body['X-Thing'], 'one');
    assert.equal(rh.body['Content-Length'], rh.res.headers.get('content-length'));

    const r3 = await get(`${bin.url}/redirect/3`);
    assert.equal(r3.status, 302);
    assert.equal(r3.headers.get('location'), '/relative-redirect/2');
    await r3.arrayBuffer();
    const r1 = await get(`${bin.url}/redirect/1`);
    assert.equal(r1.headers.get('location'), '/get');
    await r1.arrayBuffer();
    const followed = await fetch(`${bin.url}/redirect/2`);
    assert.equal(followed.url, `${bin.url}/get`);
    await followed.arrayBuffer();
  });

  it('/cookies/set sets cookies and sends the client to /cookies, which lists them', async () => {
    const set = await get(`${bin.url}/cookies/set?flavour=oat&n=1`);
    assert.equal(set.status, 302);
    assert.equal(set.headers.get('location'), '/cookies');
    assert.deepEqual(set.headers.getSetCookie(), ['flavour=oat; Path=/', 'n=1; Path=/']);
    await set.arrayBuffer();
    const { body } = await getJson(`${bin.url}/cookies`, { headers: { cookie: 'flavour=oat; n=1' } });
    assert.deepEqual(body, { cookies: { flavour: 'oat', n: '1' } });
  });

  it('/html, /json and /robots.txt', async () => {
    const html = await get(`${bin.url}/html`);
    assert.match(html.headers.get('content-type')!, /^text\/html/);
    assert.match(await html.text(), /<h1>Herman Melville - Moby-Dick<\/h1>/);
    assert.equal((await getJson(`${bin.url}/json`)).body.slideshow.title, 'Sample Slide Show');
    assert.equal(await (await get(`${bin.url}/robots.txt`)).text(), 'User-agent: *\nDisallow: /deny\n');
  });

  it('refuses a body over 1 MiB with 413', async () => {
    const res = await get(`${bin.url}/post`, { method: 'POST', body: new Uint8Array(1024 * 1024 + 1) });
    assert.equal(res.status, 413);
    await res.arrayBuffer();
    const atLimit = await getJson(`${bin.url}/anything`, { method: 'POST', body: 'x'.repeat(1024 * 1024) });
    assert.equal(atLimit.status, 200);
    assert.equal(atLimit.body.data.length, 1024 * 1024);
  });

  it('/flaky/{key}/{n} fails the first n requests of a key, then succeeds', async () => {
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const { status, body } = await getJson(`${bin.url}/flaky/retry-a/2`);
      statuses.push(status);
      assert.deepEqual(body, { key: 'retry-a', attempt: i + 1, failures: 2 });
    }
    assert.deepEqual(statuses, [503, 503, 200, 200]);
    assert.equal((await get(`${bin.url}/flaky/retry-b/0`)).status, 200); // keys don't share counts
    assert.equal((await get(`${bin.url}/flaky/retry-c/x`)).status, 404);
  });
});

describe('load client', () => {
  let bin: Httpbin;
  before(async () => {
    bin = await start();
  });

  it('runLoad counts codes exactly and keeps to c keep-alive connections', async () => {
    const r = await runLoad({ url: `${bin.url}/flaky/load/13`, connections: 3, requests: 30 });
    assert.equal(r.requests, 30);
    assert.deepEqual(r.codes, { 200: 17, 503: 13 });
    assert.ok(r.sockets >= 1 && r.sockets <= 3, `sockets ${r.sockets}`);
    assert.ok(r.latencyMs.min <= r.latencyMs.p50 && r.latencyMs.p50 <= r.latencyMs.p99);
    assert.ok(r.latencyMs.p99 <= r.latencyMs.max);
    const text = formatResult(r);
    assert.match(text, /^Code 200 : 17 \(56\.7 %\)$/m);
    assert.match(text, /^Code 503 : 13 \(43\.3 %\)$/m);
    assert.match(text, /^# target 99% \d+\.\d+$/m);
  });

  it('paces requests with -qps, sends -H headers, and counts no answer as -1', async () => {
    const t0 = performance.now();
    const paced = await runLoad({
      url: `${bin.url}/headers`,
      connections: 2,
      requests: 6,
      qps: 20,
    });
    assert.deepEqual(paced.codes, { 200: 6 });
    assert.ok(performance.now() - t0 >= 240, 'six calls at 20 qps take at least 250 ms');

    // httpbin can't report what it was sent back through runLoad, so a recording server checks -H.
    const seen: (string | undefined)[] = [];
    const recorder = createHttpServer((req, res) => {
      seen.push(req.headers['x-load'] as string | undefined);
      res.end();
    });
    recorder.listen(0, '127.0.0.1');
    await once(recorder, 'listening');
    const { port } = recorder.address() as AddressInfo;
    const sent = await runLoad({
      url: `http://127.0.0.1:${port}/`,
      requests: 2,
      headers: { 'x-load': 'yes' },
    });
    recorder.close();
    assert.deepEqual(sent.codes, { 200: 2 });
    assert.deepEqual(seen, ['yes', 'yes']);

    const dead = await runLoad({ url: `http://127.0.0.1:${await freePort()}/`, requests: 3 });
    assert.deepEqual(dead.codes, { '-1': 3 });
    assert.match(dead.errors[0], /ECONNREFUSED/);
    assert.deepEqual(parseArgs(['-c', '3', '-n', '30', '-H', 'a: b', '-json', 'http://h:8000/get']), {
      opts: { url: 'http://h:8000/get', connections: 3, requests: 30, qps: 0, headers: { a: 'b' } },
      json: true,
    });
    assert.throws(() => parseArgs(['-c', 'x', 'http://h/']), /-c needs/);
  });

  it('the CLI prints the JSON summary with -json', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(here, 'load.ts'), '-c', '2', '-n', '5', '-json', `${bin.url}/status/201`],
      { env: baseEnv() },
    );
    const result = JSON.parse(stdout);
    assert.deepEqual(result.codes, { 201: 5 });
    assert.equal(result.connections, 2);
  });

  it('httpbin exits 0 on SIGTERM', async () => {
    const svc = await start();
    assert.equal(await svc.stop(), 0);
    assert.equal(svc.child.signalCode, null);
  });
});
