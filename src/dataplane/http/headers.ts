// Header hygiene between hops: hop-by-hop headers never cross the proxy (RFC 9110 §7.6.1), HTTP/2
// forbids connection-specific ones, and the proxy owns x-forwarded-*, x-forwarded-client-cert and,
// at the edge, x-request-id.
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings',
]);

/** Headers the proxies use among themselves; an app can neither send nor see them. */
export const PEER_HEADER = 'x-trellis-peer';

/**
 * Only a sidecar's inbound side writes it, from the verified peer (Istio's SANITIZE_SET): whatever a
 * client sends is dropped at every hop, so an app can never pass off an identity it does not hold.
 */
export const XFCC_HEADER = 'x-forwarded-client-cert';

/** On every response the proxy makes itself: its response flag, and the rule that decided. */
export const FLAGS_HEADER = 'x-trellis-response-flags';
export const RULE_HEADER = 'x-trellis-rule';

/** RFC 9110 field-name (a token): what a header name we parse or write must be. */
export const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export interface ForwardedInfo {
  clientAddress: string | undefined;
  proto: 'http' | 'https';
  /**
   * The client is outside the mesh (a gateway, Envoy's use_remote_address): its x-forwarded-proto and
   * x-request-id are not believed but overwritten.
   */
  edge: boolean;
}

/**
 * The headers to send upstream. Also listed in `Connection` are dropped, pseudo-headers are left to
 * the caller, and x-request-id is generated when absent so every hop logs the same id.
 */
export function upstreamHeaders(
  src: IncomingHttpHeaders,
  fwd: ForwardedInfo | undefined,
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const connection = src.connection;
  const listed = connection
    ? new Set(
        String(connection)
          .toLowerCase()
          .split(/\s*,\s*/),
      )
    : undefined;
  for (const name in src) {
    if (name.charCodeAt(0) === 58 /* : */ || hopByHop.has(name) || name === PEER_HEADER) continue;
    if (name === XFCC_HEADER) continue;
    if (listed?.has(name)) continue;
    const v = src[name];
    if (v !== undefined) out[name] = v; // a phase unset it (a JWT that is not forwarded)
  }
  if (src.te === 'trailers') out.te = 'trailers';
  if (fwd) {
    const prior = src['x-forwarded-for'];
    if (fwd.clientAddress)
      out['x-forwarded-for'] = prior ? `${prior}, ${fwd.clientAddress}` : fwd.clientAddress;
    if (fwd.edge) out['x-forwarded-proto'] = fwd.proto;
    else out['x-forwarded-proto'] ??= fwd.proto;
  }
  if (fwd?.edge || !out['x-request-id']) out['x-request-id'] = randomUUID();
  return out;
}

/** Response headers to pass back to the client. */
export function downstreamHeaders(src: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in src) {
    if (name.charCodeAt(0) === 58 || hopByHop.has(name)) continue;
    out[name] = src[name];
  }
  return out;
}
