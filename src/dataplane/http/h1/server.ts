// HTTP/1.1 served on raw sockets for the proxy's app-facing listeners: the strict parser in,
// responses framed by hand out. Node's `http` server cost about a third of a sidecar's CPU per request
// (bench/README.md); a proxy needs only framing, keep-alive, pipelining, CONNECT and timeouts.
import { type IncomingHttpHeaders, type OutgoingHttpHeaders, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { type ErrorCode, statusOf } from '../../../lib/codes.ts';
import type { Downstream } from '../downstream.ts';
import { FIELD_NAME, FLAGS_HEADER } from '../headers.ts';
import { allowedUpgrade, upgradeField } from '../upgrade.ts';
import { ParseError, type RequestHead, RequestParser } from './parser.ts';

/**
 * From the end of one exchange (or the connection's start) to the next whole request head, and for
 * the rest of a body whose request was answered before it ended.
 */
const IDLE_TIMEOUT_MS = 60_000;
/** From the flush of a connection's last response to its close if the client has not closed first. */
const DELAYED_CLOSE_MS = 1000;
const SWEEP_MS = 1000;

/** `tunnel` is the CONNECT target when the request came through a tunnel. */
export type RequestHandler = (down: Downstream, socket: Socket, tunnel: string | undefined) => void;

/** Takes over a CONNECT tunnel's socket once the client was told 200. */
export type TunnelHandler = (socket: Socket) => void;

/** A request the codec refused itself (malformed, ambiguous, too slow): answered with `status`, flag DPE. */
export interface Rejection {
  status: number;
  /** A TRL_HTTP_* code. */
  code: ErrorCode;
  message: string;
  socket: Socket;
}

export class H1Server {
  readonly onRequest: RequestHandler;
  /** Whether CONNECT opens a tunnel whose requests are served like any other (the app's proxy). */
  readonly tunnels: boolean;
  readonly idleTimeoutMs: number;
  readonly delayedCloseMs: number;
  /** Told of every rejection, for the log and the metrics. */
  readonly onReject: (r: Rejection) => void;
  /**
   * Asked for each CONNECT target: a handler takes the tunnel's socket (past the head, paused, with
   * what the client sent after it put back) instead of serving HTTP inside it.
   */
  readonly connect: ((target: string) => TunnelHandler | undefined) | undefined;
  readonly connections = new Set<H1Connection>();
  /** Draining: every response closes its connection. */
  closing = false;
  private sweep?: NodeJS.Timeout;

  constructor(
    onRequest: RequestHandler,
    opts: {
      tunnels: boolean;
      onReject: (r: Rejection) => void;
      idleTimeoutMs?: number;
      delayedCloseMs?: number;
      connect?: (target: string) => TunnelHandler | undefined;
    },
  ) {
    this.onRequest = onRequest;
    this.tunnels = opts.tunnels;
    this.onReject = opts.onReject;
    this.connect = opts.connect;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    this.delayedCloseMs = opts.delayedCloseMs ?? DELAYED_CLOSE_MS;
  }

  /** `tunnel`: the socket's destination, a CONNECT tunnel opened elsewhere or a captured connection. */
  serve(socket: Socket, tunnel?: string): void {
    this.connections.add(new H1Connection(this, socket, tunnel));
    // One timer for all connections, like Node's connectionsCheckingInterval: nothing per request.
    this.sweep ??= setInterval(() => this.expire(), Math.min(SWEEP_MS, this.idleTimeoutMs)).unref();
  }

  /** Closes the connections not serving a request (Node's server.closeIdleConnections). */
  closeIdleConnections(): void {
    for (const c of this.connections) if (c.idle) c.socket.destroy();
  }

  closeAllConnections(): void {
    for (const c of this.connections) c.socket.destroy();
  }

  close(cb?: () => void): void {
    this.closing = true;
    clearInterval(this.sweep);
    this.sweep = undefined;
    cb?.();
  }

  private expire(): void {
    const now = performance.now();
    for (const c of this.connections)
      if (c.waitingSince >= 0 && now - c.waitingSince > this.idleTimeoutMs) c.timeout();
    if (this.connections.size === 0) {
      clearInterval(this.sweep);
      this.sweep = undefined;
    }
  }
}

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

class H1Connection {
  readonly server: H1Server;
  readonly socket: Socket;
  /** When waiting for a request head began, or -1 while an exchange is under way. */
  waitingSince = performance.now();
  private parser: RequestParser;
  /** The exchange whose response is not finished. */
  private current?: RawDownstream;
  /** The exchange whose request body is still arriving (it may be answered already). */
  private receiving?: RawDownstream;
  /** Bytes read past a request while its response is pending (pipelining), or past a tunnel's head. */
  private pending?: Buffer;
  private bodyPaused = false;
  /** The parser stopped after a request whose response is not out yet. */
  private held = false;
  /** Refused: nothing more is read. */
  private dead = false;
  private tunnel: string | undefined;
  /** Set by a CONNECT or Upgrade head: the parser stopped there, the bytes after it start afresh. */
  private switchParser = false;
  /** After a 101: the exchange whose tunnel the connection now carries, byte for byte. */
  private upgraded?: RawDownstream;
  /** The client half-closed. */
  private clientEnded = false;
  private delayedClose?: NodeJS.Timeout;
  /** Set by a CONNECT head whose tunnel another handler takes: the socket leaves after the head. */
  private handoff?: TunnelHandler;

  constructor(server: H1Server, socket: Socket, tunnel?: string) {
    this.server = server;
    this.socket = socket;
    this.tunnel = tunnel;
    // A client may half-close after its request and still wait for the answer.
    socket.allowHalfOpen = true;
    this.parser = this.newParser();
    socket.on('data', this.onData);
    socket.on('end', this.onSocketEnd);
    socket.on('error', this.onError);
    socket.once('close', this.onSocketClose);
    socket.resume();
  }

  private readonly onData = (chunk: Buffer): void => this.feed(chunk);
  private readonly onSocketEnd = (): void => this.onEnd();
  private readonly onError = (): void => {
    this.socket.destroy();
  };
  private readonly onSocketClose = (): void => this.onClose();

  /** The socket leaves this connection for `to`, with `rest` (read past the CONNECT head) put back. */
  private release(rest: Buffer, to: TunnelHandler): void {
    const s = this.socket;
    this.dead = true;
    s.pause();
    s.off('data', this.onData);
    s.off('end', this.onSocketEnd);
    s.off('error', this.onError);
    s.off('close', this.onSocketClose);
    this.server.connections.delete(this);
    if (rest.length) s.unshift(rest);
    to(s);
  }

  /** Not serving a request and not in the middle of one. */
  get idle(): boolean {
    return this.current === undefined && this.receiving === undefined && this.parser.idle && !this.pending;
  }

  private newParser(): RequestParser {
    return new RequestParser({
      onHead: (head) => this.onHead(head),
      onBody: (chunk) => this.receiving?.pushBody(chunk),
      onTrailers: () => {},
      onEnd: () => this.onMessageEnd(),
    });
  }

  private feed(chunk: Buffer): void {
    if (this.upgraded) {
      this.upgraded.pushTunnel(chunk);
      return;
    }
    if (this.dead) return;
    if (this.pending || this.held) {
      this.pending = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
      this.socket.pause();
      return;
    }
    let n: number;
    try {
      n = this.parser.execute(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (this.handoff) {
      this.release(chunk.subarray(n), this.handoff);
      return;
    }
    if (this.switchParser) {
      this.switchParser = false;
      this.parser = this.newParser();
    }
    if (n === chunk.length) return;
    const rest = chunk.subarray(n);
    // Answered 101 at once (from within onHead): the rest of the segment is the tunnel's.
    const upgraded = this.upgraded as RawDownstream | undefined;
    if (upgraded) upgraded.pushTunnel(rest);
    else if (this.current) {
      // Pipelined: the next request waits for this response.
      this.pending = rest;
      this.socket.pause();
    } else this.feed(rest);
  }

  private onHead(head: RequestHead): void {
    this.waitingSince = -1;
    let upgrade: string | undefined;
    if (head.upgrade) {
      this.switchParser = true;
      if (head.method === 'CONNECT') {
        if (this.server.tunnels) {
          this.tunnel = head.target;
          this.socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          this.waitingSince = performance.now();
          this.handoff = this.server.connect?.(head.target);
        } else this.reject('TRL_HTTP_CONNECT_NOT_ALLOWED', 'CONNECT is not served on this listener');
        return;
      }
      // A body and then the new protocol's bytes could not be told apart: refused.
      if (head.body !== 'none') {
        this.reject('TRL_HTTP_UPGRADE_WITH_BODY', 'an Upgrade request with a body is not served');
        return;
      }
      const field = upgradeField(head.rawHeaders);
      upgrade = allowedUpgrade(field);
      if (upgrade === undefined) {
        this.reject(
          'TRL_HTTP_UPGRADE_NOT_SUPPORTED',
          `Upgrade ${JSON.stringify(field)} is not carried: the only upgrade allowed is websocket`,
        );
        return;
      }
      // The bytes after the head wait (pending, the socket paused) for the answer: a 101 makes them
      // the tunnel's first, any other answer closes the connection.
    }
    const down = new RawDownstream(this, head, upgrade);
    this.current = down;
    if (head.body !== 'none') {
      this.receiving = down;
      if (head.expectContinue && head.minor === 1) this.socket.write(CONTINUE, 'latin1');
    }
    this.server.onRequest(down, this.socket, this.tunnel);
  }

  private onMessageEnd(): void {
    const r = this.receiving;
    this.receiving = undefined;
    r?.pushBody(null);
    // Hold the next pipelined request until this response is out.
    if (this.current) {
      this.held = true;
      this.parser.pause();
    } else this.waitingSince = performance.now();
  }

  /** Body backpressure from the exchange reading the request. */
  pauseBody(): void {
    this.bodyPaused = true;
    this.socket.pause();
  }

  resumeBody(): void {
    if (!this.bodyPaused) return;
    this.bodyPaused = false;
    if (!this.pending) this.socket.resume();
  }

  /** The response is out: close, or go on with the next request. */
  exchangeDone(down: RawDownstream): void {
    if (this.current !== down) return;
    this.current = undefined;
    if (!down.keepAlive) {
      this.close();
      return;
    }
    // Also when the request body is still arriving: answered, it has as long as a next head would.
    this.waitingSince = performance.now();
    if (this.held) {
      this.held = false;
      this.parser.resume();
    }
    const rest = this.pending;
    this.pending = undefined;
    if (!this.bodyPaused) this.socket.resume();
    if (rest) this.feed(rest);
  }

  /** The exchange answered 101: from now on the connection's bytes are its tunnel's, both ways. */
  upgrade(down: RawDownstream): void {
    this.upgraded = down;
    this.held = false;
    const rest = this.pending;
    this.pending = undefined;
    if (rest) down.pushTunnel(rest);
    if (this.clientEnded) down.pushTunnel(null);
    if (!this.bodyPaused) this.socket.resume();
  }

  /** The client half-closed: finish what is under way, then close; a tunnel passes the end on. */
  private onEnd(): void {
    this.clientEnded = true;
    if (this.upgraded) this.upgraded.pushTunnel(null);
    else if (!this.current && !this.receiving) this.socket.end();
    else if (this.receiving) this.fail(new Error('client closed before the request body ended'));
    // Otherwise the response in progress ends the connection: its keepAlive is now false.
    else this.current!.keepAlive = false;
  }

  private onClose(): void {
    clearTimeout(this.delayedClose);
    this.server.connections.delete(this);
    this.receiving?.abortBody();
    this.upgraded?.abortBody();
    this.current?.closed();
    this.current = undefined;
    this.receiving = undefined;
  }

  timeout(): void {
    // Idle, or the rest of an answered request's body never came: nothing to tell the client.
    if ((this.parser.idle && !this.pending) || this.receiving) this.socket.destroy();
    else
      this.reject(
        'TRL_HTTP_REQUEST_TIMEOUT',
        `no complete request head within ${this.server.idleTimeoutMs} ms`,
      );
  }

  private fail(err: Error): void {
    if (err instanceof ParseError) this.reject(err.code, err.message);
    else this.socket.destroy();
  }

  /**
   * Ends our side, then lets go of the socket when the client closes its side, or at the latest
   * `delayedCloseMs` after the last byte is flushed (Envoy's delayed_close_timeout): a client that
   * never closes cannot hold a file descriptor. What it still sends is read and dropped so that its
   * FIN is seen, and so that our close is not a reset that could discard the response unread.
   */
  private close(last?: string): void {
    this.dead = true;
    const s = this.socket;
    s.end(last ?? '', 'latin1', () => {
      if (!s.destroyed) this.delayedClose = setTimeout(() => s.destroy(), this.server.delayedCloseMs);
    });
    this.bodyPaused = false;
    s.resume();
  }

  /**
   * Answers a request the parser or the connection refused, and closes. If a response is already
   * under way the connection is cut instead: its client sees a truncated response, not a second one.
   */
  private reject(code: ErrorCode, message: string): void {
    const status = statusOf(code);
    this.waitingSince = -1;
    this.dead = true;
    if (this.current?.headersSent) {
      this.socket.destroy();
      return;
    }
    this.current?.closed();
    this.current = undefined;
    this.receiving?.abortBody();
    this.receiving = undefined;
    const text = `${code}: ${message}\n`;
    this.close(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: text/plain\r\n${FLAGS_HEADER}: DPE\r\n` +
        `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
    );
    this.server.onReject({ status, code, message, socket: this.socket });
  }
}

/** Header fields Node keeps only the first of; set-cookie is a list, cookie joins with '; '. */
const SINGLE = new Set([
  'content-type',
  'content-length',
  'user-agent',
  'referer',
  'host',
  'authorization',
  'proxy-authorization',
  'if-modified-since',
  'if-unmodified-since',
  'from',
  'location',
  'max-forwards',
  'retry-after',
  'etag',
  'last-modified',
  'server',
  'age',
  'expires',
]);

/** The headers object Node's `http` would give for these raw headers. */
export function headersObject(raw: string[]): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    const value = raw[i + 1];
    const prior = out[name];
    if (prior === undefined) out[name] = name === 'set-cookie' ? [value] : value;
    else if (name === 'set-cookie') (prior as string[]).push(value);
    else if (!SINGLE.has(name)) out[name] = `${prior}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return out;
}

// Response header names and values go on the wire as given: one with CR or LF would split the response.
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** Framing is the connection's: these never come from the caller. */
const FRAMING = new Set(['connection', 'transfer-encoding', 'keep-alive']);

let dateSecond = 0;
let dateText = '';
/** Date changes once a second; format it once a second. */
function httpDate(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

const EMPTY = Buffer.alloc(0);

class RawDownstream implements Downstream {
  readonly protocol = 'HTTP/1.1';
  readonly method: string;
  readonly target: string;
  readonly authority: string;
  readonly headers: IncomingHttpHeaders;
  readonly hasBody: boolean;
  readonly upgrade: string | undefined;
  headersSent = false;
  keepAlive: boolean;
  private readonly conn: H1Connection;
  /** Answered 101: writes go to the socket as they are, end() half-closes it. */
  private tunnelling = false;
  private readonly minor: 0 | 1;
  private requestBody?: Readable;
  /** The serialized head, held until the first body bytes so both go out in one write. */
  private head?: string;
  private chunked = false;
  private bodiless = false;
  private done = false;
  private closeCallbacks?: (() => void)[];

  constructor(conn: H1Connection, head: RequestHead, upgrade: string | undefined) {
    this.conn = conn;
    this.method = head.method;
    this.target = head.target;
    this.minor = head.minor;
    this.headers = headersObject(head.rawHeaders);
    this.authority = this.headers.host ?? '';
    this.hasBody = head.body !== 'none';
    this.keepAlive = head.keepAlive;
    this.upgrade = upgrade;
    // An upgrade's body is what the client sends after its head, once the upstream switched.
    if (this.hasBody || upgrade !== undefined) {
      this.requestBody = new Readable({ read: () => conn.resumeBody() });
    }
  }

  get body(): Readable {
    this.requestBody ??= Readable.from([]);
    return this.requestBody;
  }

  get remoteAddress(): string | undefined {
    return this.conn.socket.remoteAddress;
  }

  get localAddress(): string | undefined {
    return this.conn.socket.localAddress;
  }

  pushBody(chunk: Buffer | null): void {
    const body = this.requestBody!;
    // Answered already: what is left of the body is read and dropped, to reach the next request.
    if (this.done) {
      if (chunk === null) body.push(null);
      return;
    }
    if (!body.push(chunk) && chunk !== null) this.conn.pauseBody();
  }

  pushTunnel(chunk: Buffer | null): void {
    if (!this.requestBody!.push(chunk) && chunk !== null) this.conn.pauseBody();
  }

  abortBody(): void {
    this.requestBody?.destroy();
  }

  respond(status: number, headers: OutgoingHttpHeaders, body?: string | Buffer): void {
    if (this.done) return;
    if (this.upgrade !== undefined) {
      if (status === 101) {
        this.switchProtocols(headers);
        return;
      }
      // Refused: what the client sent after its head cannot be read as requests.
      this.keepAlive = false;
    }
    this.headersSent = true;
    this.bodiless = this.method === 'HEAD' || status === 204 || status === 304 || status < 200;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    let hasLength = false;
    let hasDate = false;
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined || FRAMING.has(name)) continue;
      if (!FIELD_NAME.test(name)) throw new TypeError(`invalid response header name ${JSON.stringify(name)}`);
      if (name === 'content-length') hasLength = true;
      else if (name === 'date') hasDate = true;
      if (Array.isArray(value)) for (const v of value) head += headerLine(name, v);
      else head += headerLine(name, String(value));
    }
    if (body !== undefined && !hasLength && !this.bodiless) {
      head += `content-length: ${Buffer.byteLength(body)}\r\n`;
      hasLength = true;
    }
    if (!hasLength && !this.bodiless) {
      // No length: chunked for HTTP/1.1 clients, the connection's end for HTTP/1.0 ones.
      if (this.minor === 1) {
        this.chunked = true;
        head += 'transfer-encoding: chunked\r\n';
      } else this.keepAlive = false;
    }
    if (this.conn.server.closing) this.keepAlive = false;
    if (!this.keepAlive) head += 'connection: close\r\n';
    else if (this.minor === 0) head += 'connection: keep-alive\r\n';
    if (!hasDate) head += `date: ${httpDate()}\r\n`;
    this.head = `${head}\r\n`;
    if (body !== undefined) this.end(typeof body === 'string' ? Buffer.from(body) : body);
  }

  /** The 101: the connection and Upgrade fields are the hop's own, the rest is the upstream's. */
  private switchProtocols(headers: OutgoingHttpHeaders): void {
    this.headersSent = true;
    this.tunnelling = true;
    let head = 'HTTP/1.1 101 Switching Protocols\r\n';
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined || FRAMING.has(name) || name === 'content-length' || name === 'upgrade')
        continue;
      if (!FIELD_NAME.test(name)) throw new TypeError(`invalid response header name ${JSON.stringify(name)}`);
      if (Array.isArray(value)) for (const v of value) head += headerLine(name, v);
      else head += headerLine(name, String(value));
    }
    this.conn.socket.write(`${head}connection: upgrade\r\nupgrade: ${this.upgrade}\r\n\r\n`, 'latin1');
    this.conn.upgrade(this);
  }

  write(chunk: Buffer): boolean {
    if (this.done) return true;
    if (this.tunnelling) return this.conn.socket.destroyed || this.conn.socket.write(chunk);
    return this.send(chunk, false);
  }

  end(chunk?: Buffer): void {
    if (this.done) return;
    if (this.tunnelling) {
      // Half-close: the client may still send until it ends its side too.
      const s = this.conn.socket;
      if (!s.destroyed) s.end(chunk ?? EMPTY);
      return;
    }
    if (!this.headersSent) this.respond(200, {});
    this.send(chunk ?? EMPTY, true);
    this.finish();
  }

  /** Head (if still held), the chunk in its framing, and the end of a chunked body: one writev. */
  private send(chunk: Buffer, last: boolean): boolean {
    const s = this.conn.socket;
    if (s.destroyed) return true;
    const data = this.bodiless ? EMPTY : chunk;
    const tail = last && this.chunked && !this.bodiless;
    if (!this.head && !this.chunked) return data.length ? s.write(data) : true;
    s.cork();
    if (this.head) {
      s.write(this.head, 'latin1');
      this.head = undefined;
    }
    let ok = true;
    if (data.length) {
      if (this.chunked) {
        s.write(`${data.length.toString(16)}\r\n`, 'latin1');
        s.write(data);
        ok = s.write(tail ? '\r\n0\r\n\r\n' : '\r\n', 'latin1');
      } else ok = s.write(data);
    } else if (tail) ok = s.write('0\r\n\r\n', 'latin1');
    s.uncork();
    return ok;
  }

  private finish(): void {
    this.done = true;
    // Answered before its body was read (a local 404, say): the rest is read and dropped, or the
    // connection would stall with the next request behind it.
    this.conn.resumeBody();
    this.conn.exchangeDone(this);
    this.closed();
  }

  /** Over for the client, finished or cut: close callbacks run once, after the current turn. */
  closed(): void {
    this.done = true;
    const cbs = this.closeCallbacks;
    this.closeCallbacks = undefined;
    if (cbs)
      process.nextTick(() => {
        for (const cb of cbs) cb();
      });
  }

  onDrain(cb: () => void): void {
    this.conn.socket.once('drain', cb);
  }

  onClose(cb: () => void): void {
    if (this.done) {
      process.nextTick(cb);
      return;
    }
    this.closeCallbacks ??= [];
    this.closeCallbacks.push(cb);
  }

  destroy(): void {
    this.conn.socket.destroy();
  }
}

function headerLine(name: string, value: string): string {
  if (BAD_VALUE.test(value)) throw new TypeError(`invalid character in response header ${name}`);
  return `${name}: ${value}\r\n`;
}
