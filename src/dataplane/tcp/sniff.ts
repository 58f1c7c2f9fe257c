// What the first bytes of a connection say, read without consuming them: a TLS ClientHello and the
// server name it asks for (Envoy's tls_inspector), or an HTTP/1.x request line or the HTTP/2 preface
// (http_inspector). Each answers `more` until it has seen enough, within a bounded prefix.
import type { Socket } from 'node:net';

/** A ClientHello's first record is at most 16 KiB plus its header; we look no further. */
export const MAX_HELLO_BYTES = 16_384 + 5;

export type HelloResult = { sni: string | undefined } | 'more' | 'not-tls';

/**
 * The SNI of a TLS ClientHello at the start of `b` (lower-case), undefined when it names none.
 * Only the first record is read: a ClientHello split over several records is taken as without SNI.
 */
export function clientHello(b: Buffer): HelloResult {
  if (b.length === 0) return 'more';
  if (b[0] !== 0x16 || (b.length > 1 && b[1] !== 0x03)) return 'not-tls';
  if (b.length < 5) return 'more';
  const recordLen = b.readUInt16BE(3);
  const end = 5 + recordLen;
  if (b.length < end) return end > MAX_HELLO_BYTES ? { sni: undefined } : 'more';
  // Handshake header: type 1 (ClientHello), 3-byte length.
  let p = 5;
  if (b[p] !== 0x01) return 'not-tls';
  p += 4;
  p += 2 + 32; // client version, random
  if (p >= end) return { sni: undefined };
  p += 1 + b[p]; // session id
  if (p + 2 > end) return { sni: undefined };
  p += 2 + b.readUInt16BE(p); // cipher suites
  if (p + 1 > end) return { sni: undefined };
  p += 1 + b[p]; // compression methods
  if (p + 2 > end) return { sni: undefined };
  const extEnd = Math.min(end, p + 2 + b.readUInt16BE(p));
  p += 2;
  while (p + 4 <= extEnd) {
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    p += 4;
    if (type === 0 && p + len <= extEnd) {
      // server_name: a list of (type, name); type 0 is a host name.
      let q = p + 2;
      const listEnd = Math.min(p + len, q + b.readUInt16BE(p));
      while (q + 3 <= listEnd) {
        const nameType = b[q];
        const nameLen = b.readUInt16BE(q + 1);
        q += 3;
        if (nameType === 0 && q + nameLen <= listEnd)
          return { sni: b.toString('latin1', q, q + nameLen).toLowerCase() };
        q += nameLen;
      }
      return { sni: undefined };
    }
    p += len;
  }
  return { sni: undefined };
}

export type HttpResult = 'http1' | 'h2' | 'other' | 'more';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n');
/** Longest method we wait for before calling the bytes something else. */
const MAX_METHOD = 20;

/** An HTTP/1.x request starts with a method token and a space; HTTP/2 with prior knowledge with its preface. */
export function httpStart(b: Buffer): HttpResult {
  const n = Math.min(b.length, PREFACE.length);
  if (PREFACE.subarray(0, n).equals(b.subarray(0, n))) return n === PREFACE.length ? 'h2' : 'more';
  for (let i = 0; i < b.length && i <= MAX_METHOD; i++) {
    const c = b[i];
    if (c === 0x20) return i > 0 ? 'http1' : 'other';
    // Methods in use are upper-case letters (and `-`, as in M-SEARCH).
    if (!((c >= 0x41 && c <= 0x5a) || c === 0x2d)) return 'other';
  }
  return b.length > MAX_METHOD ? 'other' : 'more';
}

/**
 * Reads the connection's first bytes until `decide` answers (anything but undefined); `full` tells it
 * no more will be waited for: the prefix reached `max` bytes, or `timeoutMs` passed. The bytes are put
 * back and the socket left paused for `then`. A connection that ends or closes first is dropped.
 */
export function peek<T>(
  socket: Socket,
  max: number,
  timeoutMs: number,
  decide: (seen: Buffer, full: boolean) => T | undefined,
  then: (answer: T) => void,
): void {
  let seen: Buffer = Buffer.alloc(0);
  let done = false;
  const settle = (full: boolean) => {
    const answer = decide(seen, full || seen.length >= max);
    if (answer === undefined) return;
    done = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.pause();
    if (seen.length) socket.unshift(seen);
    then(answer);
  };
  const onData = (chunk: Buffer) => {
    seen = seen.length ? Buffer.concat([seen, chunk]) : chunk;
    settle(false);
  };
  const onEnd = () => socket.destroy();
  const timer = setTimeout(() => {
    if (!done && !socket.destroyed) settle(true);
  }, timeoutMs);
  socket.once('close', () => clearTimeout(timer));
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.resume();
}
