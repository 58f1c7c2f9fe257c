// Who may use the HTTP API, over real sockets: the admin credential, JSON bodies only, no cross-origin
// browser requests, no rebound Host, and bodies too large refused without being held.
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from '../lib/log.ts';
import { isOwnHost, MAX_BODY_BYTES } from './api-access.ts';
import { createApiServer } from './api-server.ts';
import { PushServer } from './push/push.ts';
import { PlatformInstances } from './registry/instances.ts';
import { Registry } from './registry/registry.ts';
import { MemoryStore } from './store/memory.ts';

const warnings: { msg: string; fields?: Record<string, unknown> }[] = [];
const log: Logger = {
  debug() {},
  info() {},
  warn: (msg, fields) => void warnings.push({ msg, fields }),
  error() {},
  child: () => log,
};
const store = new MemoryStore();
const registry = new Registry({ log });
const push = new PushServer({ store, registry, mesh: { trustDomain: 'cluster.local' }, log });
const adminToken = 'an-admin-credential-for-this-test';
const server = createApiServer({
  store,
  push,
  registry,
  instances: await PlatformInstances.open(),
  adminToken,
  version: 'test',
  log,
});
let port = 0;

const VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v2}}]
`;
const applyBody = JSON.stringify({ sources: [{ file: 'vs.yaml', text: VS }] });

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  json: { code?: string; message?: string; issues?: unknown[] };
}

/** One request with exactly these headers (Host included), the body written in 1 MiB chunks. */
function request(
  method: string,
  path: string,
  headers: http.OutgoingHttpHeaders,
  body?: string | { bytes: number },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path, headers: { host: `127.0.0.1:${port}`, ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json: JSON.parse(text) }),
        );
      },
    );
    // The server may answer and close before the whole body is sent: that is the point.
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err);
    });
    if (typeof body === 'string') return void req.end(body);
    if (!body) return void req.end();
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    let left = body.bytes;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!req.write(chunk.subarray(0, n))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };

describe('HTTP API access', () => {
  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    push.close();
    server.close();
  });

  test('without the admin credential: 401 TRL_API_UNAUTHENTICATED, logged; a wrong one too', async () => {
    for (const headers of [
      { 'content-type': 'application/json' },
      { 'content-type': 'application/json', authorization: 'Bearer not-the-credential' },
      { 'content-type': 'application/json', authorization: adminToken },
    ]) {
      const r = await request('POST', '/api/v1/apply', headers, applyBody);
      assert.equal(r.status, 401);
      assert.equal(r.json.code, 'TRL_API_UNAUTHENTICATED');
      assert.equal(r.headers['www-authenticate'], 'Bearer realm="trellis"');
    }
    const get = await request('GET', '/api/v1/resources', {});
    assert.equal(get.status, 401, 'reads need it too');
    assert.ok(
      warnings.some((w) => w.msg === 'api request refused' && w.fields?.code === 'TRL_API_UNAUTHENTICATED'),
    );
    assert.equal(store.revision, 0, 'nothing was applied');
  });

  test('a text/plain POST from a foreign origin is refused: 403 TRL_API_CROSS_ORIGIN, nothing applied', async () => {
    // What any web page on the operator's machine can send without a CORS preflight.
    const r = await request(
      'POST',
      '/api/v1/apply',
      { 'content-type': 'text/plain', origin: 'https://evil.example' },
      applyBody,
    );
    assert.equal(r.status, 403);
    assert.equal(r.json.code, 'TRL_API_CROSS_ORIGIN');
    // Even with the credential (a page cannot have it, but the origin alone is reason enough).
    for (const origin of [
      'https://evil.example',
      'null',
      `http://127.0.0.1:${port + 1}`,
      `http://evil.example:${port}`,
    ]) {
      const withCredential = await request('POST', '/api/v1/apply', { ...admin, origin }, applyBody);
      assert.equal(withCredential.status, 403, origin);
      assert.equal(withCredential.json.code, 'TRL_API_CROSS_ORIGIN');
    }
    const site = await request('GET', '/api/v1/resources', { ...admin, 'sec-fetch-site': 'cross-site' });
    assert.equal(site.status, 403);
    assert.equal(store.revision, 0);
  });

  test('a body that is not application/json: 415 TRL_UNSUPPORTED_MEDIA_TYPE', async () => {
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      undefined,
    ]) {
      const headers: http.OutgoingHttpHeaders = { authorization: admin.authorization };
      if (type) headers['content-type'] = type;
      const r = await request('POST', '/api/v1/apply', headers, applyBody);
      assert.equal(r.status, 415, String(type));
      assert.equal(r.json.code, 'TRL_UNSUPPORTED_MEDIA_TYPE');
    }
    assert.equal(store.revision, 0);
  });

  test('a Host that does not name the API by address is refused (DNS rebinding)', async () => {
    for (const host of [
      'evil.example',
      `evil.example:${port}`,
      `127.0.0.1.nip.io:${port}`,
      `127.0.0.1:${port + 1}`,
    ]) {
      const r = await request('GET', '/api/v1/version', { ...admin, host });
      assert.equal(r.status, 403, host);
      assert.equal(r.json.code, 'TRL_API_CROSS_ORIGIN');
    }
    // No Host at all (HTTP/1.0): nothing names the API, so nothing is answered but the refusal.
    const raw = await new Promise<string>((resolve, reject) => {
      let text = '';
      const s = net.connect(port, '127.0.0.1', () =>
        s.end(`GET /api/v1/version HTTP/1.0\r\nAuthorization: ${admin.authorization}\r\n\r\n`),
      );
      s.setEncoding('utf8');
      s.on('data', (c: string) => {
        text += c;
      });
      s.on('end', () => resolve(text));
      s.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.1 403 /);
    assert.match(raw, /TRL_API_CROSS_ORIGIN/);
  });

  test('the credential, JSON and the API own origin: applied', async () => {
    for (const origin of [undefined, `http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
      const headers: http.OutgoingHttpHeaders = {
        ...admin,
        'content-type': 'application/json; charset=utf-8',
      };
      if (origin) headers.origin = origin;
      const r = await request('POST', '/api/v1/apply', headers, applyBody);
      assert.equal(r.status, 200, JSON.stringify(r.json));
    }
    const local = await request('GET', '/api/v1/version', { ...admin, host: `localhost:${port}` });
    assert.equal(local.status, 200);
    assert.equal(store.revision, 1);
  });

  test('isOwnHost: localhost or an address, on the port the request came to', () => {
    const cases: [string | undefined, boolean][] = [
      ['127.0.0.1:8080', true],
      ['localhost:8080', true],
      ['LOCALHOST.:8080', true],
      ['[::1]:8080', true],
      ['10.1.2.3:8080', true],
      ['127.0.0.1', false],
      ['127.0.0.1:8081', false],
      ['localhost.evil.example:8080', false],
      ['user@127.0.0.1:8080', false],
      ['127.0.0.1:8080/x', false],
      ['', false],
      [undefined, false],
    ];
    for (const [host, want] of cases) assert.equal(isOwnHost(host, 8080), want, String(host));
    assert.equal(isOwnHost('127.0.0.1', 80), true, 'no port is port 80');
  });

  test('a too-large document gets 413 TRL_PAYLOAD_TOO_LARGE and leaves no memory behind', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const measure = () => {
      gc();
      gc();
      return { heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss };
    };
    const start = measure();
    const big = 15 * 1024 * 1024;
    for (let i = 0; i < 10; i++) {
      const declared = await request(
        'POST',
        '/api/v1/apply',
        { ...admin, 'content-length': big },
        { bytes: big },
      );
      assert.equal(declared.status, 413);
      assert.equal(declared.json.code, 'TRL_PAYLOAD_TOO_LARGE');
      // Chunked: no length to judge by, so the running size decides.
      const chunked = await request('POST', '/api/v1/apply', admin, { bytes: big });
      assert.equal(chunked.status, 413);
    }
    const afterLarge = measure();
    // Under the limit but invalid everywhere: parsed and validated. The first try grows the heap; the
    // next ones reuse it instead of adding to it.
    const doc = (i: number) =>
      `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"v${i}"},"spec":{"htp":[]}}`;
    const docs: string[] = [];
    let size = 0;
    for (let i = 0; size < MAX_BODY_BYTES * 0.8; i++) {
      docs.push(doc(i));
      size += docs[i].length + 1;
    }
    const invalid = JSON.stringify({ sources: [{ file: 'huge.json', text: `[${docs.join(',')}]` }] });
    const tries: { heap: number; rss: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await request('POST', '/api/v1/apply', admin, invalid);
      assert.equal(r.status, 400);
      assert.equal(r.json.code, 'TRL_VALIDATION');
      assert.match(
        r.json.message ?? '',
        new RegExp(`^${docs.length} errors found \\(the first 100 are listed\\)`),
      );
      assert.equal(r.json.issues?.length, 100, 'the response does not grow with the errors');
      tries.push(measure());
    }
    const mib = (n: number) => Math.round(n / 1024 / 1024);
    assert.ok(
      afterLarge.heap - start.heap < 16 * 1024 * 1024,
      `heap grew by ${mib(afterLarge.heap - start.heap)} MiB`,
    );
    assert.ok(
      afterLarge.rss - start.rss < 96 * 1024 * 1024, // RSS keeps what the allocator holds on to: the heap bound is the tight one
      `RSS grew by ${mib(afterLarge.rss - start.rss)} MiB`,
    );
    const last = tries[tries.length - 1];
    assert.ok(last.heap - start.heap < 32 * 1024 * 1024, `heap grew by ${mib(last.heap - start.heap)} MiB`);
    assert.ok(
      last.rss - tries[0].rss < 64 * 1024 * 1024,
      `RSS went on growing: ${tries.map((t) => mib(t.rss)).join(' → ')} MiB`,
    );
    assert.equal(store.revision, 1, 'nothing was applied');
  });
});
