// What an HTTP route does besides choosing clusters: retries (Istio's default policy when unset),
// fault injection, header edits and CORS, translated from the VirtualService rule as pilot does.
import {
  type CorsPolicy as CorsSpec,
  GRPC_STATUSES,
  type HTTPFaultInjection,
  type HTTPRetry,
} from '../api/kinds/http-route.ts';
import type {
  HeaderOperations,
  Headers,
  Percent,
  StringMatch as StringMatchSpec,
} from '../api/kinds/index.ts';
import { parseDuration } from '../api/schema.ts';
import type { CorsPolicy, FaultPolicy, HeaderEdits, HeaderOps, RetryPolicy } from './snapshot.ts';

/** pilot's retry.DefaultPolicy(). */
export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 2,
  on: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'],
  statusCodes: [503],
  backoffMs: 25,
  ignorePreviousHosts: true,
  origin: "Istio's default retry policy",
};

/**
 * Undefined when the route retries nothing (`attempts: 0`). `routeTimeoutMs` is the per-try timeout
 * when none is given, as in Istio.
 */
export function retryPolicy(
  spec: HTTPRetry | undefined,
  origin: string,
  routeTimeoutMs: number | undefined,
  /** meshConfig.defaultHttpRetryPolicy, for routes that set none. */
  meshDefault?: HTTPRetry,
): RetryPolicy | undefined {
  if (!spec) {
    if (!meshDefault) return DEFAULT_RETRY;
    return retryPolicy(meshDefault, 'meshConfig.defaultHttpRetryPolicy', routeTimeoutMs);
  }
  const attempts = spec.attempts ?? 2;
  if (attempts === 0) return undefined;
  const on: string[] = [];
  const statusCodes: number[] = [];
  for (const raw of (spec.retryOn ?? DEFAULT_RETRY.on.join(',')).split(',')) {
    const t = raw.trim();
    if (t === '') continue;
    if (/^\d+$/.test(t)) statusCodes.push(Number(t));
    else if (!on.includes(t)) on.push(t);
  }
  // A bare status code implies the condition that reads it (pilot adds it the same way).
  if (statusCodes.length && !on.includes('retriable-status-codes')) on.push('retriable-status-codes');
  // Istio's own list carries 503 with retriable-status-codes only when the user left retryOn unset.
  if (spec.retryOn === undefined) statusCodes.push(...DEFAULT_RETRY.statusCodes);
  const perTry = spec.perTryTimeout ? parseDuration(spec.perTryTimeout) : routeTimeoutMs;
  const backoff = spec.backoff ? parseDuration(spec.backoff) : undefined;
  return {
    attempts,
    ...(perTry ? { perTryTimeoutMs: perTry } : {}),
    on,
    statusCodes,
    backoffMs: backoff ?? 25,
    ignorePreviousHosts: spec.retryIgnorePreviousHosts ?? true,
    ...(spec.retryRemoteLocalities !== undefined ? { remoteLocalities: spec.retryRemoteLocalities } : {}),
    origin: origin.startsWith('meshConfig') ? origin : `${origin} retries`,
  };
}

/** Istio's Percent, or the deprecated integer `percent`; absent: every request. */
function share(p: Percent | undefined, legacy?: number): number {
  if (p?.value !== undefined) return p.value;
  if (legacy !== undefined) return legacy;
  return 100;
}

export function faultPolicy(spec: HTTPFaultInjection | undefined): FaultPolicy | undefined {
  if (!spec) return undefined;
  const out: FaultPolicy = {};
  const d = spec.delay;
  if (d?.fixedDelay)
    out.delay = { ms: parseDuration(d.fixedDelay)!, percent: share(d.percentage, d.percent) };
  const a = spec.abort;
  if (a?.httpStatus !== undefined) out.abort = { status: a.httpStatus, percent: share(a.percentage) };
  else if (a?.grpcStatus !== undefined)
    out.abort = {
      status: 200,
      grpcStatus: GRPC_STATUSES.indexOf(a.grpcStatus),
      percent: share(a.percentage),
    };
  return out.delay || out.abort ? out : undefined;
}

function ops(o: HeaderOperations | undefined): HeaderOps | undefined {
  if (!o) return undefined;
  const lower = (m: Record<string, string> | undefined) =>
    m && Object.keys(m).length
      ? Object.fromEntries(Object.entries(m).map(([k, v]) => [k.toLowerCase(), v]))
      : undefined;
  const out: HeaderOps = {};
  const set = lower(o.set);
  const add = lower(o.add);
  if (set) out.set = set;
  if (add) out.add = add;
  if (o.remove?.length) out.remove = o.remove.map((r) => r.toLowerCase());
  return out.set || out.add || out.remove ? out : undefined;
}

export function headerEdits(h: Headers | undefined): HeaderEdits | undefined {
  const request = ops(h?.request);
  const response = ops(h?.response);
  if (!request && !response) return undefined;
  return { ...(request ? { request } : {}), ...(response ? { response } : {}) };
}

export function corsPolicy(spec: CorsSpec | undefined): CorsPolicy | undefined {
  if (!spec) return undefined;
  const origins: StringMatchSpec[] = spec.allowOrigins ?? (spec.allowOrigin ?? []).map((o) => ({ exact: o }));
  const maxAge = spec.maxAge ? parseDuration(spec.maxAge) : undefined;
  return {
    allowOrigins: origins.map((m) =>
      m.exact !== undefined
        ? { exact: m.exact }
        : m.prefix !== undefined
          ? { prefix: m.prefix }
          : { regex: m.regex! },
    ),
    ...(spec.allowMethods?.length ? { allowMethods: spec.allowMethods } : {}),
    ...(spec.allowHeaders?.length ? { allowHeaders: spec.allowHeaders } : {}),
    ...(spec.exposeHeaders?.length ? { exposeHeaders: spec.exposeHeaders } : {}),
    ...(maxAge !== undefined ? { maxAgeSeconds: Math.floor(maxAge / 1000) } : {}),
    ...(spec.allowCredentials !== undefined ? { allowCredentials: spec.allowCredentials } : {}),
    unmatchedPreflights: spec.unmatchedPreflights === 'IGNORE' ? 'IGNORE' : 'FORWARD',
  };
}
