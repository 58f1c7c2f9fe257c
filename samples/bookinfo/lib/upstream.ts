// Calls to peer services: where they live, which request headers travel with a call, timeouts.
import type { IncomingMessage } from 'node:http';

/**
 * Request headers every Bookinfo service copies from its inbound request onto its outbound calls,
 * so the mesh can stitch one trace together and route on the signed-in user.
 */
export const FORWARDED_HEADERS: readonly string[] = [
  'x-request-id',
  // W3C trace context
  'traceparent',
  'tracestate',
  // Zipkin B3, multi- and single-header
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
  'b3',
  // Lightstep
  'x-ot-span-context',
  // Datadog
  'x-datadog-trace-id',
  'x-datadog-parent-id',
  'x-datadog-sampling-priority',
  // Google Cloud Trace / OpenCensus
  'x-cloud-trace-context',
  'grpc-trace-bin',
  // SkyWalking
  'sw8',
  // Application headers
  'end-user',
  'user-agent',
];

/** The forwarded subset of an inbound request's headers. */
export function forwardHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of FORWARDED_HEADERS) {
    const value = req.headers[name];
    if (typeof value === 'string') out[name] = value;
    else if (Array.isArray(value) && value.length > 0) out[name] = value.join(', ');
  }
  return out;
}

export type Peer = 'details' | 'reviews' | 'ratings';

/**
 * Base URL of a peer, named like Istio's samples do: `<PEER>_HOSTNAME` (default the peer's
 * name) plus `.<SERVICES_DOMAIN>` when set, and port `<PEER>_SERVICE_PORT` (default 9080).
 * In the mesh the plain name is what the sidecar's outbound proxy routes on.
 */
export function peerUrl(peer: Peer, env: NodeJS.ProcessEnv = process.env): string {
  const prefix = peer.toUpperCase();
  const host = env[`${prefix}_HOSTNAME`] || peer;
  const rawDomain = env.SERVICES_DOMAIN ?? '';
  const domain = rawDomain === '' ? '' : rawDomain.startsWith('.') ? rawDomain : `.${rawDomain}`;
  const port = env[`${prefix}_SERVICE_PORT`] || '9080';
  return `http://${host}${domain}:${port}`;
}

export interface UpstreamReply {
  status: number;
  /** Parsed JSON body; undefined when the body was not JSON. */
  body: unknown;
}

/**
 * GETs a peer's JSON resource. Resolves with any HTTP status; rejects on a connection error or
 * when no complete answer came within `timeoutMs`.
 */
export async function getJson(
  url: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<UpstreamReply> {
  const res = await fetch(url, {
    headers: { accept: 'application/json', ...headers },
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body };
}

/** A positive integer from the environment, or the fallback. */
export function envMs(value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}
