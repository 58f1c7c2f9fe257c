// The client side of an exchange, whatever it came in on. HTTP/1.1 is served on raw sockets
// (h1/server.ts); HTTP/2 uses the raw stream API, which skips the compat layer's two objects per request.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import http2, { type ServerHttp2Stream } from 'node:http2';
import type { Readable } from 'node:stream';
import { allowedUpgrade, h2UpgradeResponse } from './upgrade.ts';

export interface Downstream {
  /** What the client spoke; the request goes on upstream in the same (USE_DOWNSTREAM_PROTOCOL). */
  readonly protocol: 'HTTP/1.1' | 'HTTP/2';
  readonly method: string;
  /** The request-target as received: origin form, or absolute form from an app using us as its proxy. */
  readonly target: string;
  /** Host header or :authority, as sent. */
  readonly authority: string;
  /** HTTP/2 pseudo-headers included. */
  readonly headers: IncomingHttpHeaders;
  readonly hasBody: boolean;
  readonly body: Readable;
  /**
   * The protocol the client asks to switch to (`websocket`), by an HTTP/1.1 Upgrade or an HTTP/2
   * extended CONNECT. Answered 101, the exchange becomes a tunnel: `body` is what the client sends
   * after its head, `write` and `end` carry the other way, `end` half-closes.
   */
  readonly upgrade?: string;
  readonly remoteAddress: string | undefined;
  /** The address the client connected to (`destination.ip`). */
  readonly localAddress: string | undefined;
  readonly headersSent: boolean;
  /** Sends the head; with `body` the response is complete. */
  respond(status: number, headers: OutgoingHttpHeaders, body?: string | Buffer): void;
  /** False when the client is slow: wait for `onDrain`. */
  write(chunk: Buffer): boolean;
  /** `trailers` go out after the body where the protocol carries them (HTTP/2, gRPC responses). */
  end(chunk?: Buffer, trailers?: OutgoingHttpHeaders): void;
  onDrain(cb: () => void): void;
  /** Once the exchange is over for the client, finished or not. */
  onClose(cb: () => void): void;
  destroy(): void;
}

export class H2Downstream implements Downstream {
  readonly protocol = 'HTTP/2';
  readonly method: string;
  readonly target: string;
  readonly authority: string;
  readonly headers: IncomingHttpHeaders;
  readonly hasBody: boolean;
  readonly body: ServerHttp2Stream;
  readonly upgrade: string | undefined;
  /** For a gRPC response: what its trailing HEADERS frame carries, known when the body ends. */
  private trailers: OutgoingHttpHeaders | undefined;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) {
    this.body = stream;
    this.headers = headers;
    this.method = (headers[':method'] as string | undefined) ?? 'GET';
    this.target = (headers[':path'] as string | undefined) ?? '/';
    this.authority = (headers[':authority'] as string | undefined) ?? headers.host ?? '';
    // The HEADERS frame carried END_STREAM: there is no body, whatever the headers say.
    this.hasBody = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) === 0;
    // RFC 8441's extended CONNECT is matched, authorized and sent on as the GET of an HTTP/1.1
    // upgrade (Envoy's translation); the listener refused a :protocol that is not carried.
    this.upgrade = allowedUpgrade(headers[':protocol'] as string | undefined);
    if (this.upgrade !== undefined && this.method === 'CONNECT') {
      this.method = 'GET';
      this.hasBody = false;
    }
  }
  get remoteAddress(): string | undefined {
    return this.body.session?.socket?.remoteAddress;
  }
  get localAddress(): string | undefined {
    return this.body.session?.socket?.localAddress;
  }
  get headersSent(): boolean {
    return this.body.headersSent;
  }
  respond(status: number, headers: OutgoingHttpHeaders, body?: string | Buffer): void {
    if (this.body.destroyed) return;
    if (status === 101 && this.upgrade !== undefined) {
      h2UpgradeResponse(headers);
      status = 200;
    }
    headers[':status'] = status;
    const endStream = body !== undefined && body.length === 0;
    // A gRPC response ends with trailers (grpc-status): the stream stays open after the last DATA
    // frame until they are sent. Other responses end with their body, as before.
    const ct = headers['content-type'];
    const waitForTrailers = !endStream && typeof ct === 'string' && ct.startsWith('application/grpc');
    this.body.respond(headers, { endStream, waitForTrailers });
    if (waitForTrailers) this.body.once('wantTrailers', () => this.body.sendTrailers(this.trailers ?? {}));
    if (body !== undefined && body.length > 0) this.body.end(body);
    if (body !== undefined) this.stopRequest();
  }
  write(chunk: Buffer): boolean {
    return this.body.destroyed ? true : this.body.write(chunk);
  }
  end(chunk?: Buffer, trailers?: OutgoingHttpHeaders): void {
    this.trailers = trailers;
    if (this.body.destroyed) return;
    this.body.end(chunk);
    this.stopRequest();
  }
  /**
   * The response is complete while the request body may still be arriving, or lie unread (the
   * proxy answered by itself, or a retry layer holds it paused): RFC 9113 §8.1's RST_STREAM
   * NO_ERROR ends it, as Envoy does (Node sends it after the response), and what is left of the
   * body is dropped: Node closes a stream only once its readable side has ended.
   */
  private stopRequest(): void {
    const s = this.body;
    if (!this.hasBody || s.readableEnded || s.closed) return;
    s.close(http2.constants.NGHTTP2_NO_ERROR);
    s.removeAllListeners('data');
    s.resume();
  }
  onDrain(cb: () => void): void {
    this.body.once('drain', cb);
  }
  onClose(cb: () => void): void {
    this.body.once('close', cb);
  }
  destroy(): void {
    this.body.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }
}

/**
 * A response body on its way to the client. When the length is known the last chunk ends the
 * stream in the same write, so the client gets data and end together; bytes past the length are
 * dropped.
 */
export class ResponseBody {
  private readonly down: Downstream;
  private readonly length: number;
  private readonly count: (n: number) => void;
  private sent = 0;
  private ended = false;

  constructor(down: Downstream, length: number, count: (n: number) => void) {
    this.down = down;
    this.length = length;
    this.count = count;
  }

  /** False when the client is slow: wait for its drain. */
  data(c: Buffer): boolean {
    if (this.length >= 0 && this.sent >= this.length) return true;
    this.sent += c.length;
    this.count(c.length);
    if (this.sent === this.length) {
      this.ended = true;
      this.down.end(c);
      return true;
    }
    return this.down.write(c);
  }

  end(trailers?: OutgoingHttpHeaders): void {
    if (this.ended) return;
    this.ended = true;
    this.down.end(undefined, trailers);
  }
}

/** Copies a readable response body to the client, keeping backpressure. */
export function relay(src: Readable, down: Downstream, length: number, count: (n: number) => void): void {
  const body = new ResponseBody(down, length, count);
  src.on('data', (c: Buffer) => {
    if (!body.data(c)) {
      src.pause();
      down.onDrain(() => src.resume());
    }
  });
  src.once('end', () => body.end());
}

/**
 * How many body bytes a response carries, or -1 when its end says it: a HEAD answer and 1xx, 204 and
 * 304 have none whatever content-length says.
 */
export function bodyLength(method: string, status: number, h: IncomingHttpHeaders): number {
  if (method === 'HEAD' || status === 204 || status === 304 || status < 200) return -1;
  const v = h['content-length'];
  if (v === undefined) return -1;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : -1;
}
