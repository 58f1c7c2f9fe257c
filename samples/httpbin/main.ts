// httpbin: a TypeScript stand-in for the httpbin.org service (kennethreitz/postmanlabs), answering
// in its JSON shapes so Istio's httpbin tasks (circuit breaking, mirroring, retries) run unchanged.
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const MAX_BODY = 1024 * 1024;
const MAX_DELAY_S = 10; // httpbin's own cap
const MAX_BYTES = 100 * 1024; // httpbin's own cap
const MAX_STREAM = 100; // httpbin's own cap
const MAX_FLAKY_KEYS = 1000;
const VERSION = process.env.SERVICE_VERSION || 'v1';

type Json = Record<string, unknown>;
type Values = Record<string, string | string[]>;

class HttpError extends Error {
  status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

// ---------------------------------------------------------------------------------------------
// Replies

function send(
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  headers: OutgoingHttpHeaders,
): void {
  res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** httpbin pretty-prints its JSON with a trailing newline. */
function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: OutgoingHttpHeaders = {},
): void {
  send(res, status, `${JSON.stringify(body, null, 2)}\n`, { 'content-type': 'application/json', ...headers });
}

function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  type = 'text/plain; charset=utf-8',
): void {
  send(res, status, text, { 'content-type': type });
}

function redirect(res: ServerResponse, location: string, status = 302): void {
  send(res, status, '', { location });
}

// ---------------------------------------------------------------------------------------------
// Request views, in httpbin's shapes

/** Python's str.title(), which is what httpbin's header names go through: `x-b3-traceid` → `X-B3-Traceid`. */
function titleCase(name: string): string {
  return name
    .toLowerCase()
    .replace(/(^|[^a-z])([a-z])/g, (_, sep: string, c: string) => sep + c.toUpperCase());
}

function headersOf(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = titleCase(raw[i]);
    out[name] = name in out ? `${out[name]},${raw[i + 1]}` : raw[i + 1];
  }
  return out;
}

/** A repeated key becomes a list, a single one stays a string (httpbin's semiflatten). */
function collect(entries: Iterable<[string, string]>): Values {
  const out: Values = {};
  for (const [k, v] of entries) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

function origin(req: IncomingMessage): string {
  const xff = req.headers['x-forwarded-for'];
  return (Array.isArray(xff) ? xff.join(', ') : xff) || req.socket.remoteAddress || '';
}

function fullUrl(req: IncomingMessage): string {
  const proto = req.headers['x-forwarded-proto'] === 'https' ? 'https' : 'http';
  return `${proto}://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`;
}

function basics(req: IncomingMessage, url: URL): Json {
  return { args: collect(url.searchParams), headers: headersOf(req), origin: origin(req), url: fullUrl(req) };
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > MAX_BODY) throw new HttpError(413, `request body larger than ${MAX_BODY} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `request body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Text when the bytes are UTF-8, else a base64 data URL, as httpbin does. */
function asText(bytes: Uint8Array, type = 'application/octet-stream'): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return `data:${type};base64,${Buffer.from(bytes).toString('base64')}`;
  }
}

/** args, data, files, form, headers, json, origin, url: the body of /post, /anything and friends. */
async function withBody(req: IncomingMessage, url: URL): Promise<Json> {
  const body = await readBody(req);
  const type = (req.headers['content-type'] ?? '').toLowerCase();
  let data = '';
  let form: Values = {};
  const files: Values = {};
  let json: unknown = null;
  if (type.startsWith('multipart/form-data') || type.startsWith('application/x-www-form-urlencoded')) {
    // The fetch Request parses both encodings, which saves a multipart parser here.
    let parsed: FormData;
    try {
      parsed = await new Request('http://body/', {
        method: 'POST',
        headers: { 'content-type': type },
        body,
      }).formData();
    } catch {
      throw new HttpError(400, 'malformed form body');
    }
    const fields: [string, string][] = [];
    for (const [k, v] of parsed) {
      if (typeof v === 'string') fields.push([k, v]);
      else files[k] = asText(new Uint8Array(await v.arrayBuffer()), v.type || undefined);
    }
    form = collect(fields);
  } else {
    data = asText(body);
    try {
      json = body.length > 0 ? JSON.parse(body.toString('utf8')) : null;
    } catch {
      json = null;
    }
  }
  const { args, headers, origin: from, url: href } = basics(req, url);
  return { args, data, files, form, headers, json, origin: from, url: href };
}

// ---------------------------------------------------------------------------------------------
// Endpoints

/** `/status/200,503` or weighted `/status/200:0.9,503:0.1` picks one code, as httpbin does. */
function pickStatus(spec: string, random = Math.random): number {
  const choices = spec.split(',').map((part) => {
    const [code, weight = '1'] = part.split(':');
    const n = Number(code);
    const w = Number(weight);
    if (!/^\d{3}$/.test(code) || n < 100 || !(w >= 0)) throw new HttpError(400, 'Invalid status code');
    return { code: n, weight: w };
  });
  const total = choices.reduce((sum, c) => sum + c.weight, 0);
  let r = random() * total;
  for (const c of choices) {
    r -= c.weight;
    if (r < 0) return c.code;
  }
  return choices[choices.length - 1].code;
}

const TEAPOT = `
    -=[ teapot ]=-

       _...._
     .'  _ _ \`.
    | ."\` ^ \`". _,
    \\_;\`"---"\`|//
      |       ;/
      \\_     _/
        \`"""\`
`;

function status(res: ServerResponse, code: number): void {
  if (code === 418) send(res, 418, TEAPOT, { 'x-more-info': 'http://tools.ietf.org/html/rfc2324' });
  else if ([301, 302, 303, 305, 307].includes(code)) send(res, code, '', { location: '/redirect/1' });
  else if (code === 401) send(res, 401, '', { 'www-authenticate': 'Basic realm="Fake Realm"' });
  else send(res, code, '', { 'content-type': 'text/html; charset=utf-8' });
}

/** Per-key attempt counts for /flaky; the oldest key goes when the map is full. */
const flaky = new Map<string, number>();

function flakyAttempt(key: string): number {
  const attempt = (flaky.get(key) ?? 0) + 1;
  flaky.delete(key); // re-insert so a busy key counts as recent
  if (flaky.size >= MAX_FLAKY_KEYS) flaky.delete(flaky.keys().next().value!);
  flaky.set(key, attempt);
  return attempt;
}

function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq).trim()] = decodeURIComponent(part.slice(eq + 1).trim());
  }
  return out;
}

/** `/response-headers` echoes its args as headers and as a body that includes its own length. */
function responseHeaders(res: ServerResponse, url: URL): void {
  const args = collect(url.searchParams);
  const headers: Record<string, string | string[]> = { 'Content-Type': 'application/json', ...args };
  let text = '';
  // The body states its own Content-Length, so iterate until the number stops changing.
  for (let len = 0, prev = -1; len !== prev; ) {
    prev = len;
    text = `${JSON.stringify({ ...headers, 'Content-Length': String(len) }, null, 2)}\n`;
    len = Buffer.byteLength(text);
  }
  for (const [k, v] of Object.entries(args)) res.setHeader(k, v);
  send(res, 200, text, { 'content-type': 'application/json' });
}

const SLIDESHOW = {
  slideshow: {
    author: 'Yours Truly',
    date: 'date of publication',
    slides: [
      { title: 'Wake up to WonderWidgets!', type: 'all' },
      {
        items: ['Why <em>WonderWidgets</em> are great', 'Who <em>buys</em> WonderWidgets'],
        title: 'Overview',
        type: 'all',
      },
    ],
    title: 'Sample Slide Show',
  },
};

const HTML = `<!DOCTYPE html>
<html>
  <head>
  </head>
  <body>
      <h1>Herman Melville - Moby-Dick</h1>

      <div>
        <p>
          Call me Ishmael. Some years ago—never mind how long precisely—having little or no money in
          my purse, and nothing particular to interest me on shore, I thought I would sail about a
          little and see the watery part of the world.
        </p>
      </div>
  </body>
</html>`;

const ROBOTS = 'User-agent: *\nDisallow: /deny\n';

const BODY_METHODS: Record<string, string> = {
  '/post': 'POST',
  '/put': 'PUT',
  '/patch': 'PATCH',
  '/delete': 'DELETE',
};

function allow(req: IncomingMessage, ...methods: string[]): void {
  const m = req.method ?? 'GET';
  // HEAD and OPTIONS are allowed wherever GET is, as in Flask.
  if (methods.includes(m) || (methods.includes('GET') && (m === 'HEAD' || m === 'OPTIONS'))) return;
  throw new HttpError(405, 'Method Not Allowed');
}

function int(segment: string | undefined): number {
  if (segment === undefined || !/^\d{1,9}$/.test(segment)) throw new HttpError(404, 'Not Found');
  return Number(segment);
}

async function handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const path = url.pathname;
  const [first, second, third] = path.split('/').filter(Boolean);
  const method = req.method ?? 'GET';

  if (path === '/health' || path === '/healthz') {
    allow(req, 'GET');
    return sendJson(res, 200, { status: 'httpbin is healthy', version: VERSION });
  }
  if (path === '/get') {
    allow(req, 'GET');
    return sendJson(res, 200, basics(req, url));
  }
  if (BODY_METHODS[path]) {
    allow(req, BODY_METHODS[path]);
    return sendJson(res, 200, await withBody(req, url));
  }
  if (first === 'anything') return sendJson(res, 200, { ...(await withBody(req, url)), method });
  if (path === '/headers') return sendJson(res, 200, { headers: headersOf(req) });
  if (path === '/ip') return sendJson(res, 200, { origin: origin(req) });
  if (path === '/user-agent') return sendJson(res, 200, { 'user-agent': req.headers['user-agent'] ?? null });
  if (path === '/uuid') return sendJson(res, 200, { uuid: randomUUID() });
  if (first === 'status' && second !== undefined && third === undefined)
    return status(res, pickStatus(second));
  if (first === 'delay' && third === undefined) {
    const seconds = Number(second);
    if (second === undefined || !Number.isFinite(seconds) || seconds < 0)
      throw new HttpError(404, 'Not Found');
    const body = await withBody(req, url);
    await new Promise((resolve) => setTimeout(resolve, Math.min(seconds, MAX_DELAY_S) * 1000));
    return sendJson(res, 200, body);
  }
  if (first === 'bytes' && third === undefined) {
    allow(req, 'GET');
    return send(res, 200, randomBytes(Math.min(int(second), MAX_BYTES)), {
      'content-type': 'application/octet-stream',
    });
  }
  if (first === 'stream' && third === undefined) {
    allow(req, 'GET');
    const n = Math.min(int(second), MAX_STREAM);
    const line = basics(req, url);
    res.writeHead(200, { 'content-type': 'application/json' });
    for (let id = 0; id < n; id++) res.write(`${JSON.stringify({ ...line, id })}\n`);
    return void res.end();
  }
  if (path === '/response-headers') {
    allow(req, 'GET', 'POST');
    return responseHeaders(res, url);
  }
  if ((first === 'redirect' || first === 'relative-redirect') && third === undefined) {
    allow(req, 'GET');
    const n = int(second);
    if (n < 1) throw new HttpError(404, 'Not Found');
    return redirect(res, n === 1 ? '/get' : `/relative-redirect/${n - 1}`);
  }
  if (path === '/cookies') {
    allow(req, 'GET');
    return sendJson(res, 200, { cookies: parseCookies(req.headers.cookie) });
  }
  if (path === '/cookies/set' || path === '/cookies/delete') {
    allow(req, 'GET');
    const cookies = [...url.searchParams].map(([k, v]) =>
      path === '/cookies/set'
        ? `${k}=${encodeURIComponent(v)}; Path=/`
        : `${k}=; Expires=Thu, 01-Jan-1970 00:00:00 GMT; Max-Age=0; Path=/`,
    );
    res.setHeader('set-cookie', cookies);
    return redirect(res, '/cookies');
  }
  if (path === '/html') return sendText(res, 200, HTML, 'text/html; charset=utf-8');
  if (path === '/json') return sendJson(res, 200, SLIDESHOW);
  if (path === '/robots.txt') return sendText(res, 200, ROBOTS);
  if (first === 'flaky' && second !== undefined && third !== undefined && path.split('/').length === 4) {
    // Not in httpbin: fails the first n requests per key, so a retry policy can be seen to work.
    const failures = int(third);
    const attempt = flakyAttempt(second);
    const ok = attempt > failures;
    return sendJson(res, ok ? 200 : 503, { key: second, attempt, failures });
  }
  throw new HttpError(404, 'Not Found');
}

// ---------------------------------------------------------------------------------------------
// Server lifecycle, as the Bookinfo services do it: PORT (default 8080, the port Istio's httpbin
// listens on), 127.0.0.1 unless BIND_ADDRESS, a ready line on stdout, exit 0 on SIGTERM.

function parsePort(value: string | undefined): number {
  if (value === undefined || value === '') return 8080;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    process.stderr.write(`invalid PORT ${JSON.stringify(value)}\n`);
    process.exit(1);
  }
  return n;
}

const server = createServer((req, res) => {
  res.setHeader('x-httpbin-version', VERSION);
  res.setHeader('access-control-allow-origin', req.headers.origin ?? '*');
  res.setHeader('access-control-allow-credentials', 'true');
  const url = new URL(req.url ?? '/', 'http://localhost');
  handle(req, res, url).catch((err: unknown) => {
    if (res.headersSent) return void res.destroy();
    if (err instanceof HttpError) {
      // An oversized body is left unread, so the connection can't carry another request.
      if (err.status === 413) res.setHeader('connection', 'close');
      return sendJson(res, err.status, { error: err.message });
    }
    process.stderr.write(`httpbin: ${req.method} ${url.pathname} failed: ${String(err)}\n`);
    sendJson(res, 500, { error: 'internal error' });
  });
});
server.keepAliveTimeout = 5000;
server.listen(parsePort(process.env.PORT), process.env.BIND_ADDRESS || '127.0.0.1', () => {
  process.stdout.write(`httpbin listening on ${(server.address() as AddressInfo).port}\n`);
});
server.on('error', (err) => {
  process.stderr.write(`httpbin: server error: ${err.message}\n`);
  process.exit(1);
});

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  // In-flight requests (a /delay, say) get a moment; then go regardless.
  setTimeout(() => {
    server.closeAllConnections();
    process.exit(0);
  }, 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
