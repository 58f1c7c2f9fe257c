// Small HTTP helpers shared by the Bookinfo services: replies, bodies and the server lifecycle.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
  });
  res.end(html);
}

export function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export class BodyTooLargeError extends Error {}

/** Reads a request body as text, refusing anything larger than `limit` bytes. */
export async function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BodyTooLargeError(`request body larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface ServeOptions {
  /** Service name for the startup line and error logs. */
  name: string;
  handler: Handler;
  /** Body of `GET /health`; JSON when an object. */
  health?: unknown;
  env?: NodeJS.ProcessEnv;
}

/**
 * Starts the service the way every Bookinfo program does: listen on `PORT` (default 9080) on
 * 127.0.0.1 (`BIND_ADDRESS` overrides), print `<name> listening on <port>`, answer `GET /health`,
 * and on SIGTERM/SIGINT stop accepting, drop idle keep-alive connections and exit 0.
 */
export function serve(opts: ServeOptions): Server {
  const env = opts.env ?? process.env;
  const port = parsePort(env.PORT);
  const host = env.BIND_ADDRESS || '127.0.0.1';
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/health' && (req.method === 'GET' || req.method === 'HEAD')) {
      const body = opts.health ?? { status: `${opts.name} is healthy` };
      if (typeof body === 'string') sendText(res, 200, body);
      else sendJson(res, 200, body);
      return;
    }
    Promise.resolve()
      .then(() => opts.handler(req, res, url))
      .catch((err: unknown) => {
        process.stderr.write(`${opts.name}: ${req.method} ${url.pathname} failed: ${String(err)}\n`);
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
        else res.destroy();
      });
  });
  server.keepAliveTimeout = 5000;
  server.listen(port, host, () => {
    const actual = (server.address() as AddressInfo).port;
    process.stdout.write(`${opts.name} listening on ${actual}\n`);
  });
  server.on('error', (err) => {
    process.stderr.write(`${opts.name}: server error: ${err.message}\n`);
    process.exit(1);
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    // Requests still in flight get a moment to finish; then go regardless.
    setTimeout(() => {
      server.closeAllConnections();
      process.exit(0);
    }, 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return server;
}

function parsePort(value: string | undefined): number {
  if (value === undefined || value === '') return 9080;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    process.stderr.write(`invalid PORT ${JSON.stringify(value)}\n`);
    process.exit(1);
  }
  return n;
}

/** Parses a path segment as an integer id; undefined when it is not one. */
export function parseId(segment: string | undefined): number | undefined {
  if (segment === undefined || !/^-?\d{1,9}$/.test(segment)) return undefined;
  return Number(segment);
}
