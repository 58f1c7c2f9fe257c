// gRPC as the proxy sees it (Envoy's Grpc::Common): which requests are gRPC, the status an exchange
// ended with, and how many length-prefixed messages crossed each way — counted as the bytes pass,
// never buffered (Envoy's grpc_stats filter, which Istio's request_messages metrics read).
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

/** Envoy's isGrpcRequestHeaders: `application/grpc`, `application/grpc+proto`, ...; not gRPC-Web. */
export function isGrpc(headers: IncomingHttpHeaders): boolean {
  const ct = headers['content-type'];
  if (ct === undefined || ct.length < 16 || !ct.startsWith('application/grpc')) return false;
  if (ct.length === 16) return true;
  const c = ct.charCodeAt(16);
  return c === 43 /* + */ || c === 59 /* ; */;
}

/**
 * Counts gRPC messages in a byte stream: each is a 5-byte prefix (a flag byte and a big-endian
 * 32-bit length) and that many bytes. The state is the position in the current prefix, the length
 * read so far and the body bytes still to skip; a message counts when its prefix starts.
 */
export class MessageCounter {
  messages = 0;
  private prefix = 0;
  private length = 0;
  private skip = 0;

  /** Bound once: a stream's 'data' listener. */
  readonly count = (chunk: Buffer): void => {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, n - i);
        this.skip -= take;
        i += take;
        continue;
      }
      const byte = chunk[i++];
      if (this.prefix === 0) this.messages++;
      // Multiplying keeps lengths of 2^31 and more positive, where a shift would not.
      else this.length = this.length * 256 + byte;
      if (++this.prefix === 5) {
        this.skip = this.length;
        this.prefix = 0;
        this.length = 0;
      }
    }
  };
}

/** What the telemetry phase reads of a gRPC exchange. */
export class GrpcExchange {
  readonly requests = new MessageCounter();
  readonly responses = new MessageCounter();
  /** grpc-status from the trailers, or a trailers-only head; undefined until one is seen. */
  status: string | undefined;

  /** Envoy's getGrpcStatus: trailers, then the head, then what the HTTP status maps to. */
  statusLabel(httpStatus: number): string {
    if (this.status !== undefined) return this.status;
    return httpStatus === 0 ? '' : String(grpcStatusOf(httpStatus));
  }
}

/** Envoy's Grpc::Utility::httpToGrpcStatus. */
export function grpcStatusOf(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return 13; // INTERNAL
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return 7; // PERMISSION_DENIED
    case 404:
      return 12; // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return 14; // UNAVAILABLE
    default:
      return 2; // UNKNOWN
  }
}

/** Envoy's Grpc::Utility::grpcToHttpStatus, by code 0..16; anything else is 500. */
const HTTP_OF_GRPC = [200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401];

export function grpcToHttpStatus(grpcStatus: string): number {
  return HTTP_OF_GRPC[Number(grpcStatus)] ?? 500;
}

/** gRPC's grpc-message encoding: printable ASCII but `%` as is, everything else percent-encoded. */
export function grpcMessage(text: string): string {
  let out = '';
  for (const b of Buffer.from(text.trim(), 'utf8')) {
    out +=
      b >= 0x20 && b <= 0x7e && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The head of a trailers-only gRPC answer the proxy makes itself, as Envoy turns its local replies
 * to gRPC requests into one: HTTP 200, the status the HTTP one maps to (or the given one), the text.
 */
export function trailersOnly(grpcStatus: number, text: string): OutgoingHttpHeaders {
  return {
    'content-type': 'application/grpc',
    'grpc-status': String(grpcStatus),
    'grpc-message': grpcMessage(text),
  };
}

/**
 * Counts the request's messages as its body is read, without changing how it flows: the counter
 * listens from the moment the first reader does (pipe, the retry layer's replay), never before.
 */
export function countAsRead(body: Readable, counter: MessageCounter): void {
  const onListener = (event: string | symbol) => {
    if (event !== 'data') return;
    body.off('newListener', onListener);
    body.on('data', counter.count);
  };
  body.on('newListener', onListener);
}

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * A grpc-timeout header (`TimeoutValue TimeoutUnit`: up to 8 digits and one of H M S m u n) in
 * milliseconds, at least 1; undefined when malformed, which Envoy ignores too.
 */
export function grpcTimeoutMs(v: string): number | undefined {
  const unit = TIMEOUT_UNIT_MS[v.charAt(v.length - 1)];
  const digits = v.slice(0, -1);
  if (unit === undefined || digits.length === 0 || digits.length > 8 || !/^\d+$/.test(digits))
    return undefined;
  return Math.max(1, Math.ceil(Number(digits) * unit));
}
