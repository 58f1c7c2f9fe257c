// What the first bytes of a connection say, read without consuming them: an HTTP/1.x request line or
// the HTTP/2 preface (Envoy's http_inspector; the ClientHello and its SNI, the tls_inspector, are
// ../client-hello.ts). Each answers `more` until it has seen enough, within a bounded prefix.
import type { Socket } from 'node:net';

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
