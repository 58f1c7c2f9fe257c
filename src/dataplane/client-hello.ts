// The TLS ClientHello, read before any handshake: its SNI says which Gateway server (filter chain) a
// connection belongs to — one that terminates TLS, or (later) one that passes it through untouched.
// The bytes are only looked at; the caller puts them back for whoever takes the connection.

/** Large enough for post-quantum key shares; a hello longer than this is refused. */
export const MAX_CLIENT_HELLO_BYTES = 64 * 1024;

export type HelloResult =
  /** More bytes are needed. */
  | { state: 'partial' }
  /** Not a ClientHello, or malformed. */
  | { state: 'invalid'; reason: string }
  | { state: 'complete'; sni?: string };

/**
 * Parses a ClientHello from the first bytes of a connection. The handshake message may span several
 * records (RFC 8446 §5.1), so handshake fragments are joined until its length is reached.
 */
export function parseClientHello(buf: Buffer): HelloResult {
  const fragments: Buffer[] = [];
  let have = 0;
  let need = -1;
  let off = 0;
  while (need < 0 || have < need) {
    if (buf.length < off + 5) return { state: 'partial' };
    if (buf[off] !== 0x16) return { state: 'invalid', reason: 'not a TLS handshake record' };
    const len = buf.readUInt16BE(off + 3);
    if (buf.length < off + 5 + len) return { state: 'partial' };
    fragments.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (need < 0 && have >= 4) {
      const head = fragments.length === 1 ? fragments[0] : Buffer.concat(fragments);
      if (head[0] !== 0x01)
        return { state: 'invalid', reason: 'first handshake message is not a ClientHello' };
      need = 4 + head.readUIntBE(1, 3);
      if (need > MAX_CLIENT_HELLO_BYTES) return { state: 'invalid', reason: 'ClientHello too large' };
    }
  }
  const hello = Buffer.concat(fragments).subarray(4, need);
  try {
    return { state: 'complete', sni: serverName(hello) };
  } catch {
    return { state: 'invalid', reason: 'malformed ClientHello' };
  }
}

/** The host_name of the server_name extension (RFC 6066 §3), lower-cased; undefined when absent. */
function serverName(h: Buffer): string | undefined {
  let p = 2 + 32; // legacy_version, random
  p += 1 + byte(h, p); // session id
  p += 2 + h.readUInt16BE(p); // cipher suites
  p += 1 + byte(h, p); // compression methods
  if (p === h.length) return undefined; // no extensions
  const end = p + 2 + h.readUInt16BE(p);
  if (end > h.length) throw new RangeError('extensions overrun');
  p += 2;
  while (p + 4 <= end) {
    const type = h.readUInt16BE(p);
    const len = h.readUInt16BE(p + 2);
    p += 4;
    if (p + len > end) throw new RangeError('extension overruns');
    if (type === 0) {
      let q = p + 2;
      while (q + 3 <= p + len) {
        const nameType = h[q];
        const nameLen = h.readUInt16BE(q + 1);
        q += 3;
        if (q + nameLen > p + len) throw new RangeError('server name overruns');
        if (nameType === 0) return h.toString('latin1', q, q + nameLen).toLowerCase();
        q += nameLen;
      }
      return undefined;
    }
    p += len;
  }
  return undefined;
}

function byte(b: Buffer, at: number): number {
  if (at >= b.length) throw new RangeError('truncated');
  return b[at];
}
