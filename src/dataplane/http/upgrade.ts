// Protocol upgrades as Istio configures Envoy: every HTTP listener allows `websocket` (Istio sets
// upgrade_configs websocket on each connection manager, and no VirtualService field turns it off);
// any other Upgrade is refused with 403, as Envoy refuses an upgrade type it is not configured for.
// An upgrade request runs the phases like any other; a 101 answer turns its exchange into a
// bidirectional byte stream. HTTP/2 clients ask with an extended CONNECT (RFC 8441), which goes on
// upstream as an HTTP/1.1 Upgrade, Envoy's translation.
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** The upgrade tokens the proxy carries, lower-case. */
const ALLOWED = new Set(['websocket']);

/** The Upgrade header's value (or :protocol) as the proxy carries it, or undefined when it does not. */
export function allowedUpgrade(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const v = value.toLowerCase();
  return ALLOWED.has(v) ? v : undefined;
}

/** The Upgrade field of raw HTTP/1.1 headers, repeated fields joined as one list. */
export function upgradeField(raw: string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i].length === 7 && raw[i].toLowerCase() === 'upgrade')
      value = value === undefined ? raw[i + 1] : `${value}, ${raw[i + 1]}`;
  return value;
}

/**
 * An extended CONNECT becomes a WebSocket handshake an HTTP/1.1 server accepts: RFC 8441 clients
 * send no Sec-WebSocket-Key (the 101's Accept proves nothing over HTTP/2), RFC 6455 servers insist.
 */
export function h1Handshake(headers: OutgoingHttpHeaders, protocol: string): void {
  if (protocol !== 'websocket') return;
  headers['sec-websocket-key'] ??= randomBytes(16).toString('base64');
  headers['sec-websocket-version'] ??= '13';
}

/** A 101 as an HTTP/2 client gets it: 200 on the stream, without the HTTP/1.1 handshake's proof. */
export function h2UpgradeResponse(headers: IncomingHttpHeaders | OutgoingHttpHeaders): void {
  delete headers['sec-websocket-accept'];
}
