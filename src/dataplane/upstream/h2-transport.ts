// The HTTP/2 transport: a Dispatch over one multiplexed mTLS session per peer endpoint, for requests
// that came in as HTTP/2.
import type { IncomingHttpHeaders } from 'node:http';
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type { Dispatch, DispatchHandler, UpstreamCall, UpstreamRequest } from './dispatch.ts';
import { UpstreamFailure } from './dispatch.ts';

export function h2Transport(session: () => ClientHttp2Session, label: string): Dispatch {
  return (req, handler) => new H2Attempt(session, label, req, handler);
}

class H2Attempt implements UpstreamCall {
  private readonly handler: DispatchHandler;
  private readonly label: string;
  private stream?: ClientHttp2Stream;
  private headReceived = false;
  private over = false;
  private trailers: IncomingHttpHeaders | undefined;

  constructor(
    session: () => ClientHttp2Session,
    label: string,
    req: UpstreamRequest,
    handler: DispatchHandler,
  ) {
    this.handler = handler;
    this.label = label;
    const headers = {
      ...req.headers,
      ':method': req.method,
      ':path': req.path,
      ':authority': req.authority,
      ':scheme': 'http',
    };
    let stream: ClientHttp2Stream;
    try {
      stream = session().request(headers, { endStream: req.body === undefined });
    } catch (err) {
      this.fail('connect', (err as Error).message);
      return;
    }
    this.stream = stream;
    if (req.body) {
      req.bodyStarted = true;
      req.body.pipe(stream);
    }
    // Node emits a HEADERS frame's event on the next tick but pushes DATA read in the same chunk at
    // once: the body is listened to only once the head has been handed on, or it would come first.
    stream.once('response', (h) => {
      if (this.over) return;
      this.headReceived = true;
      this.handler.onHead(Number(h[':status']), h as IncomingHttpHeaders);
      stream.on('data', (c: Buffer) => {
        if (!this.over && !this.handler.onData(c)) stream.pause();
      });
    });
    // Node emits a trailing HEADERS frame before the stream's end.
    stream.once('trailers', (t) => {
      this.trailers = t as IncomingHttpHeaders;
    });
    stream.once('end', () => {
      if (this.over) return;
      this.over = true;
      this.handler.onEnd(this.trailers);
    });
    stream.on('error', (err) => {
      const connectFailed =
        !this.headReceived &&
        (stream.session?.connecting || (err as NodeJS.ErrnoException).code === 'ECONNREFUSED');
      this.fail(connectFailed ? 'connect' : 'reset', err.message);
    });
    stream.once('close', () => {
      if (this.over) return;
      this.fail(
        'reset',
        `upstream reset (code ${stream.rstCode}) by ${this.label}`,
        true,
        stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM,
      );
    });
  }

  private fail(kind: 'connect' | 'reset', message: string, bare = false, refused = false): void {
    if (this.over) return;
    this.over = true;
    const f = new UpstreamFailure(kind, bare ? message : `${this.label}: ${message}`, this.headReceived);
    f.refused = refused;
    this.handler.onError(f);
  }

  resume(): void {
    this.stream?.resume();
  }

  abort(): void {
    this.over = true;
    if (this.stream && !this.stream.closed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }
}
