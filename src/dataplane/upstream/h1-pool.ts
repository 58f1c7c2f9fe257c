// HTTP/1.1 upstream on raw keep-alive sockets: to the app beside the proxy on loopback, to other
// proxies over mutual TLS (peer-pool.ts), and to upstreams outside the mesh (external-pool.ts). Node's http client costs as much CPU per request as the
// rest of a sidecar (bench/README.md). Here the request is ours to write, so it is always well formed,
// and the other end is the app or an authenticated proxy. So the codec is small: it writes requests
// and parses responses framed by content-length, chunked encoding, or the connection's close. An
// upgrade request's connection answered 101 leaves the pool for good and carries the tunnel's bytes.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import net from 'node:net';
import { TLSSocket } from 'node:tls';
import { FIELD_NAME } from '../http/headers.ts';

export type FailureStage = 'connect' | 'sent' | 'response';

export interface ResponseHandler {
  /** Hop-by-hop headers are still there: the caller filters what it passes on. */
  onHead(status: number, headers: IncomingHttpHeaders): void;
  /** False when the client is slow: the upstream's socket pauses until `resume()`. */
  onData(chunk: Buffer): boolean;
  onEnd(): void;
  /**
   * `stage` says how far the exchange got: `connect` (no connection; for TLS, no completed
   * handshake), `sent` (no response head yet), `response` (the head had arrived). `stale`: the
   * request went out on a reused connection and not a byte came back — the upstream had closed it
   * meanwhile, so the request may be sent again on a new one (the replay layer does).
   */
  onError(err: Error, stage: FailureStage, stale: boolean): void;
}

export interface UpstreamRequest {
  /** False when the upstream is slow: wait for `onDrain`. */
  write(chunk: Buffer): boolean;
  onDrain(cb: () => void): void;
  end(): void;
  resume(): void;
  abort(): void;
}

const MAX_HEAD = 64 * 1024;
/** Envoy's stream_idle_timeout, which Istio leaves at its default: an upgraded tunnel's idle limit. */
export const TUNNEL_IDLE_TIMEOUT_MS = 5 * 60_000;

/** A tunnel that moved no byte either way for the idle timeout. */
export class StreamIdleTimeout extends Error {}
/** ` 200` and the space or end after it. */
const STATUS = /^ [1-9]\d\d( |$)/;
/** Control characters other than HTAB, and CR or LF outside a CRLF pair. */
const BAD_HEAD = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n/;

/** Only SP and HTAB are optional whitespace (String.trim would take CR, LF and more). */
function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}
const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

type Body =
  | { kind: 'none' }
  | { kind: 'length'; left: number }
  | { kind: 'chunked'; state: 'size' | 'data' | 'data-crlf' | 'trailers'; left: number }
  | { kind: 'close' }
  /** After a 101: bytes both ways until either side ends. */
  | { kind: 'tunnel' };

/** One keep-alive connection; one exchange at a time. */
class Connection implements UpstreamRequest {
  readonly socket: net.Socket;
  private readonly pool: H1Pool;
  private handler?: ResponseHandler;
  private method = 'GET';
  private upgrade: string | undefined;
  private chunkedRequest = false;
  private buf: Buffer | undefined;
  private body: Body | undefined;
  private keepAlive = true;
  /** Bytes of the current response seen: a reused socket that fails before any may be retried. */
  private received = 0;
  reused = false;
  /** Requests it has carried, for maxRequestsPerConnection. */
  served = 0;
  readonly opened = Date.now();
  /** Connected (and for TLS, handshaken). */
  private connected = false;
  private tls13 = false;
  /** A TLS 1.3 server sends session tickets only once it has accepted the client's certificate. */
  private ticketed = false;
  private done = true;

  constructor(pool: H1Pool) {
    this.pool = pool;
    this.socket = pool.connect();
    const socket = this.socket;
    if (socket instanceof TLSSocket) {
      socket.once('secureConnect', () => {
        this.connected = true;
        this.tls13 = socket.getProtocol() === 'TLSv1.3';
      });
      socket.once('session', () => {
        this.ticketed = true;
      });
    } else socket.once('connect', () => (this.connected = true));
    this.socket.on('data', (c: Buffer) => this.onData(c));
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => this.onClose());
  }

  start(
    method: string,
    path: string,
    headers: OutgoingHttpHeaders,
    hasBody: boolean,
    h: ResponseHandler,
    upgrade: string | undefined,
  ): void {
    this.handler = h;
    this.method = method;
    this.upgrade = upgrade;
    this.served++;
    this.done = false;
    this.received = 0;
    this.buf = undefined;
    this.body = undefined;
    this.chunkedRequest = hasBody && headers['content-length'] === undefined;
    let head = `${method} ${path} HTTP/1.1\r\n`;
    for (const name in headers) {
      const v = headers[name];
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const x of v) head += `${name}: ${x}\r\n`;
      else head += `${name}: ${v}\r\n`;
    }
    if (this.chunkedRequest) head += 'transfer-encoding: chunked\r\n';
    if (upgrade !== undefined) head += `connection: upgrade\r\nupgrade: ${upgrade}\r\n`;
    this.socket.write(`${head}\r\n`, 'latin1');
  }

  write(chunk: Buffer): boolean {
    if (!this.chunkedRequest) return this.socket.write(chunk);
    if (chunk.length === 0) return true;
    this.socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    this.socket.write(chunk);
    return this.socket.write(CRLF);
  }

  onDrain(cb: () => void): void {
    this.socket.once('drain', cb);
  }

  end(): void {
    if (this.chunkedRequest) this.socket.write('0\r\n\r\n', 'latin1');
    // The client half-closed its tunnel: so does this hop, and the upstream may still answer.
    else if (this.body?.kind === 'tunnel') this.socket.end();
  }

  resume(): void {
    this.socket.resume();
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    this.handler = undefined;
    this.socket.destroy();
  }

  private onData(c: Buffer): void {
    this.received += c.length;
    if (this.done) {
      // Bytes nobody asked for: the connection cannot be trusted any more.
      this.socket.destroy();
      return;
    }
    let data: Buffer = this.buf ? Buffer.concat([this.buf, c]) : c;
    this.buf = undefined;
    while (data.length > 0 && !this.done) {
      if (this.body === undefined) {
        const end = data.indexOf(HEAD_END);
        if (end < 0) {
          if (data.length > MAX_HEAD) this.fail(new Error('response head larger than 64 KiB'));
          else this.buf = data;
          return;
        }
        if (!this.head(data.toString('latin1', 0, end))) return;
        data = data.subarray(end + 4);
        continue;
      }
      data = this.bodyBytes(data);
    }
    if (data.length > 0 && this.done) this.socket.destroy();
  }

  /** Parses a response head; false when it failed or was an interim (1xx) response already skipped. */
  private head(text: string): boolean {
    let eol = text.indexOf('\r\n');
    if (eol < 0) eol = text.length;
    const minor = text.charCodeAt(7);
    if (
      !text.startsWith('HTTP/1.') ||
      (minor !== 0x30 && minor !== 0x31) ||
      !STATUS.test(text.slice(8, 13))
    ) {
      this.fail(
        new Error(`malformed response status line ${JSON.stringify(text.slice(0, Math.min(eol, 60)))}`),
      );
      return false;
    }
    const status = Number(text.slice(9, 12));
    // Checked as strictly as requests are: a CR, LF or other control character in a value would be
    // passed on to the client. One scan of the whole head, then each line is cut at its colon.
    if (BAD_HEAD.test(text)) {
      this.fail(new Error('malformed response head: a control character, or CR or LF alone'));
      return false;
    }
    const headers: IncomingHttpHeaders = {};
    for (let at = eol + 2; at < text.length; ) {
      let end = text.indexOf('\r\n', at);
      if (end < 0) end = text.length;
      const colon = text.indexOf(':', at);
      const name = colon > at && colon < end ? text.slice(at, colon) : '';
      if (!FIELD_NAME.test(name)) {
        this.fail(
          new Error(
            `malformed response header line ${JSON.stringify(text.slice(at, Math.min(end, at + 60)))}`,
          ),
        );
        return false;
      }
      let vs = colon + 1;
      let ve = end;
      while (vs < ve && isOws(text.charCodeAt(vs))) vs++;
      while (ve > vs && isOws(text.charCodeAt(ve - 1))) ve--;
      const value = text.slice(vs, ve);
      at = end + 2;
      const key = name.toLowerCase();
      const prior = headers[key];
      if (prior === undefined) headers[key] = key === 'set-cookie' ? [value] : value;
      else if (Array.isArray(prior)) prior.push(value);
      else headers[key] = `${prior}, ${value}`;
    }
    if (status < 200) {
      // 100 Continue and 103 Early Hints: the real response follows on the same connection.
      if (status === 101) {
        if (this.upgrade !== undefined) return this.switched(headers);
        this.fail(new Error('the upstream switched protocols (101) without being asked to'));
        return false;
      }
      return true;
    }
    const connection = String(headers.connection ?? '').toLowerCase();
    this.keepAlive = minor === 0x31 ? !connection.includes('close') : connection.includes('keep-alive');
    // A refused upgrade: the server may have treated the connection as about to change (Node's
    // http server destroys one it has no upgrade listener for); it serves nothing more.
    if (this.upgrade !== undefined) this.keepAlive = false;
    const te = headers['transfer-encoding'];
    if (this.method === 'HEAD' || status === 204 || status === 304) this.body = { kind: 'none' };
    else if (te !== undefined && String(te).toLowerCase().includes('chunked'))
      this.body = { kind: 'chunked', state: 'size', left: 0 };
    else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (!Number.isSafeInteger(n) || n < 0) {
        this.fail(new Error(`bad content-length ${JSON.stringify(headers['content-length'])}`));
        return false;
      }
      this.body = n === 0 ? { kind: 'none' } : { kind: 'length', left: n };
    } else {
      this.body = { kind: 'close' };
      this.keepAlive = false;
    }
    this.handler?.onHead(status, headers);
    if (this.body.kind === 'none') this.finish();
    return true;
  }

  /**
   * The upstream answered the upgrade with 101: the connection is the tunnel's alone (never back in
   * the pool), both directions end on their own, and it is cut after the idle timeout.
   */
  private switched(headers: IncomingHttpHeaders): boolean {
    this.body = { kind: 'tunnel' };
    this.keepAlive = false;
    const s = this.socket;
    s.allowHalfOpen = true;
    s.once('end', () => {
      const h = this.handler;
      this.handler = undefined;
      h?.onEnd();
    });
    // Node's socket timeout counts reads and writes alike, with no timer per chunk.
    const idleMs = this.pool.tunnelIdleTimeoutMs;
    s.removeAllListeners('timeout');
    s.setTimeout(idleMs, () =>
      this.fail(new StreamIdleTimeout(`no bytes either way in the upgraded stream for ${idleMs}ms`)),
    );
    this.handler?.onHead(101, headers);
    return true;
  }

  /** Consumes body bytes; returns what is left over. */
  private bodyBytes(data: Buffer): Buffer {
    const body = this.body!;
    if (body.kind === 'close' || body.kind === 'tunnel') {
      this.deliver(data);
      return data.subarray(data.length);
    }
    if (body.kind === 'length') {
      const take = Math.min(body.left, data.length);
      body.left -= take;
      this.deliver(data.subarray(0, take));
      if (body.left === 0) this.finish();
      return data.subarray(take);
    }
    if (body.kind === 'none') return data;
    // chunked
    if (body.state === 'data') {
      const take = Math.min(body.left, data.length);
      body.left -= take;
      this.deliver(data.subarray(0, take));
      if (body.left === 0) body.state = 'data-crlf';
      return data.subarray(take);
    }
    const eol = data.indexOf(CRLF);
    if (eol < 0) {
      if (data.length > MAX_HEAD) this.fail(new Error('chunk framing line too long'));
      else this.buf = data;
      return data.subarray(data.length);
    }
    const line = data.toString('latin1', 0, eol);
    const rest = data.subarray(eol + 2);
    if (body.state === 'data-crlf') {
      if (line !== '') this.fail(new Error('chunk not followed by CRLF'));
      body.state = 'size';
    } else if (body.state === 'size') {
      const size = Number.parseInt(line.split(';')[0].trim(), 16);
      if (!Number.isSafeInteger(size) || size < 0 || !/^[0-9a-fA-F]+/.test(line)) {
        this.fail(new Error(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`));
        return rest;
      }
      if (size === 0) body.state = 'trailers';
      else {
        body.state = 'data';
        body.left = size;
      }
    } else if (line === '') {
      this.finish(); // end of trailers (which are dropped)
    }
    return rest;
  }

  private deliver(chunk: Buffer): void {
    if (chunk.length === 0 || !this.handler) return;
    if (!this.handler.onData(chunk)) this.socket.pause();
  }

  private finish(): void {
    const h = this.handler;
    this.done = true;
    this.handler = undefined;
    this.body = undefined;
    this.pool.release(this, this.keepAlive && !this.socket.destroyed);
    h?.onEnd();
  }

  private fail(err: Error): void {
    const h = this.handler;
    const refused =
      this.unanswered() && ((err as NodeJS.ErrnoException).code?.startsWith('ERR_SSL_') || this.unticketed());
    const stage: FailureStage =
      this.body !== undefined ? 'response' : this.connected && !refused ? 'sent' : 'connect';
    this.done = true;
    this.handler = undefined;
    this.socket.destroy();
    h?.onError(err, stage, this.reused && this.received === 0);
  }

  /**
   * In TLS 1.3 the client's side of the handshake completes before the server has checked the
   * client's certificate: a TLS alert, or a close with neither a session ticket nor a response
   * byte, on a new connection is the server refusing the handshake, not the request.
   */
  private unanswered(): boolean {
    return this.received === 0 && !this.reused;
  }

  private unticketed(): boolean {
    return this.tls13 && !this.ticketed;
  }

  private onClose(): void {
    this.pool.forget(this);
    if (this.done) return;
    if (this.body?.kind === 'tunnel' && !this.handler) {
      this.done = true; // both sides ended
      return;
    }
    if (this.body?.kind === 'close') {
      this.finish();
      return;
    }
    this.fail(
      new Error(
        this.body
          ? 'the upstream closed the connection mid-response'
          : this.unanswered() && this.unticketed()
            ? 'the upstream closed the connection right after the TLS 1.3 handshake, without a session ticket: it refused the client certificate (or wanted one)'
            : 'the upstream closed the connection',
      ),
    );
  }
}

/** DestinationRule connectionPool settings a pool applies to its connections. */
export interface PoolLimits {
  /** A connection is closed after this many requests (1: no keep-alive). */
  maxRequestsPerConnection?: number;
  /** An idle connection is closed after this long. */
  idleTimeoutMs?: number;
  /** A connection is not reused once this old. */
  maxConnectionDurationMs?: number;
  /** An upgraded connection is cut after this long without a byte either way. */
  tunnelIdleTimeoutMs?: number;
}

/** Keep-alive connections to one upstream; `connect` opens one more. */
export class H1Pool {
  readonly connect: () => net.Socket;
  private readonly idle: Connection[] = [];
  private readonly maxIdle: number;
  private readonly limits: PoolLimits;
  readonly tunnelIdleTimeoutMs: number;
  constructor(connect: () => net.Socket, maxIdle = 64, limits: PoolLimits = {}) {
    this.connect = connect;
    this.maxIdle = maxIdle;
    this.limits = limits;
    this.tunnelIdleTimeoutMs = limits.tunnelIdleTimeoutMs ?? TUNNEL_IDLE_TIMEOUT_MS;
  }

  /** The app beside the proxy. */
  static loopback(port: number): H1Pool {
    return new H1Pool(() => net.connect({ host: '127.0.0.1', port, noDelay: true }));
  }

  request(
    method: string,
    path: string,
    headers: OutgoingHttpHeaders,
    hasBody: boolean,
    handler: ResponseHandler,
    fresh = false,
    upgrade?: string,
  ): UpstreamRequest {
    let conn = fresh ? undefined : this.idle.pop();
    while (conn?.socket.destroyed) conn = this.idle.pop();
    if (conn) {
      conn.reused = true;
      if (this.limits.idleTimeoutMs !== undefined) conn.socket.setTimeout(0);
    } else conn = new Connection(this);
    conn.start(method, path, headers, hasBody, handler, upgrade);
    return conn;
  }

  release(conn: Connection, reusable: boolean): void {
    const l = this.limits;
    const spent =
      (l.maxRequestsPerConnection !== undefined && conn.served >= l.maxRequestsPerConnection) ||
      (l.maxConnectionDurationMs !== undefined && Date.now() - conn.opened >= l.maxConnectionDurationMs);
    if (reusable && !spent && this.idle.length < this.maxIdle) {
      this.idle.push(conn);
      if (l.idleTimeoutMs !== undefined) conn.socket.setTimeout(l.idleTimeoutMs, () => conn.socket.destroy());
    } else conn.socket.end();
  }

  forget(conn: Connection): void {
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
  }

  close(): void {
    for (const c of this.idle.splice(0)) c.socket.destroy();
  }
}
