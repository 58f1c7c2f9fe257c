// Who may use the HTTP API, checked before any request is routed. The API rewrites the mesh, so a
// request must carry the admin credential, and a browser on the operator's machine must not be able to
// reach it on anyone else's behalf: a foreign Origin is refused (cross-site requests), and so is a Host
// that does not name the API by address (DNS rebinding: a page whose own name resolves to 127.0.0.1).
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { TrellisError } from '../lib/errors.ts';

/**
 * Decoding YAML with positions costs about 250 bytes of heap per byte of input (measured: 0.8 MB of
 * documents took the heap 171 MB up, and V8 keeps a heap it has grown). 1 MiB of resources is tens of
 * thousands of lines, far more than a mesh file; a larger body would let one request take the
 * control plane's memory.
 */
export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * Whether `host` (a Host header, or an Origin's host) names this API: `localhost` or an IP literal, on
 * the port the request arrived at. A DNS name other than localhost could be an attacker's, rebound to
 * this address; an address cannot.
 */
export function isOwnHost(host: string | undefined, localPort: number | undefined): boolean {
  if (!host) return false;
  let url: URL;
  try {
    url = new URL(`http://${host}`);
  } catch {
    return false;
  }
  if (url.username || url.password || url.pathname !== '/' || url.search || url.hash) return false;
  const port = url.port === '' ? 80 : Number(url.port);
  if (port !== localPort) return false;
  const name = url.hostname.toLowerCase().replace(/\.$/, '');
  const bare = name.startsWith('[') ? name.slice(1, -1) : name;
  return name === 'localhost' || isIP(bare) !== 0;
}

function bearerMatches(header: string | undefined, token: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const a = Buffer.from(header.slice(7).trim());
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Throws the refusal for a request that may not use the API. */
export function checkAccess(req: IncomingMessage, adminToken: string): void {
  const localPort = req.socket.localPort;
  if (!isOwnHost(req.headers.host, localPort)) {
    throw new TrellisError(
      'TRL_API_CROSS_ORIGIN',
      `Host ${JSON.stringify(req.headers.host ?? '')} does not name this API: use its address, e.g. http://127.0.0.1:${localPort}`,
    );
  }
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let own = false;
    try {
      const u = new URL(origin);
      own = u.protocol === 'http:' && u.origin === origin && isOwnHost(u.host, localPort);
    } catch {
      own = false;
    }
    if (!own)
      throw new TrellisError('TRL_API_CROSS_ORIGIN', `requests from origin ${origin} are not allowed`);
  }
  // Sent by browsers even where Origin is not (simple GETs): nothing but the API's own pages may call it.
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none')
    throw new TrellisError('TRL_API_CROSS_ORIGIN', `requests from a ${site} page are not allowed`);
  if (!bearerMatches(req.headers.authorization, adminToken)) {
    throw new TrellisError(
      'TRL_API_UNAUTHENTICATED',
      req.headers.authorization === undefined
        ? 'the API requires the admin credential: send Authorization: Bearer <token> (the CLI reads it from <state-dir>/admin-token or $TRELLIS_ADMIN_TOKEN)'
        : 'the admin credential is not valid for this control plane',
    );
  }
}

/**
 * The request's JSON body, at most MAX_BODY_BYTES: a larger one is refused as soon as its
 * Content-Length (or its running size) says so, and never buffered.
 */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    throw new TrellisError(
      'TRL_UNSUPPORTED_MEDIA_TYPE',
      `request body must be application/json, not ${type || 'untyped'}`,
    );
  }
  const tooLarge = () =>
    new TrellisError(
      'TRL_PAYLOAD_TOO_LARGE',
      `request body is larger than ${MAX_BODY_BYTES / 1024 / 1024} MiB: split the files into several applies`,
    );
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) throw tooLarge();
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // Past the limit the rest is read and dropped, not left unread: the refusal can then still be
    // answered on this connection (leaving a for-await early would destroy the socket).
    req.on('data', (c: Buffer) => {
      if (size > MAX_BODY_BYTES) return;
      size += c.length;
      if (size <= MAX_BODY_BYTES) return void chunks.push(c);
      chunks.length = 0;
      reject(tooLarge());
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
  try {
    return JSON.parse(text || '{}');
  } catch {
    throw new TrellisError('TRL_INVALID_ARGUMENT', 'request body is not JSON');
  }
}
