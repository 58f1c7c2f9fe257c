// A VirtualService `corsPolicy` evaluated as Envoy's CORS filter does (cors_filter.cc), compiled once
// per route when the snapshot is applied. Envoy only answers and decorates; it never refuses a request:
// a disallowed origin simply gets no access-control-allow-origin, and the browser does the refusing.

import type { IncomingHttpHeaders } from 'node:http';
import type { CorsPolicy } from '../../compile/snapshot.ts';
import { compileStringMatch, type Matcher } from './route-table.ts';

export interface CorsAnswer {
  status: number;
  headers: Record<string, string>;
}

/** A preflight the proxy answers itself, or one that goes on upstream untouched. */
export type CorsPreflight =
  | { answer: CorsAnswer; forward?: undefined }
  | { forward: true; answer?: undefined };

const FORWARD: CorsPreflight = { forward: true };

export class Cors {
  readonly #origins: Matcher[];
  // Envoy also tries each matcher on the literal "*", so `exact: "*"` (and anything else that
  // matches "*") admits every origin; the reply still echoes the origin, never `*`.
  readonly #anyOrigin: boolean;
  readonly #forwardUnmatched: boolean;
  readonly #credentials: boolean;
  // Istio joins the lists with "," and Envoy treats only a joined value of exactly "*" as a
  // wildcard that echoes the request; "*,GET" is sent as it stands.
  readonly #methods: string | undefined;
  readonly #headers: string | undefined;
  readonly #expose: string | undefined;
  readonly #maxAge: string | undefined;

  constructor(policy: CorsPolicy) {
    this.#origins = policy.allowOrigins.map((m) => compileStringMatch(m));
    this.#anyOrigin = this.#origins.some((m) => m('*'));
    this.#forwardUnmatched = policy.unmatchedPreflights === 'FORWARD';
    this.#credentials = policy.allowCredentials === true;
    this.#methods = joined(policy.allowMethods);
    this.#headers = joined(policy.allowHeaders);
    this.#expose = joined(policy.exposeHeaders);
    this.#maxAge = policy.maxAgeSeconds === undefined ? undefined : String(policy.maxAgeSeconds);
  }

  /**
   * undefined when the request is not a preflight (OPTIONS with a non-empty Origin and
   * Access-Control-Request-Method); it then goes on as an ordinary request.
   */
  preflight(method: string, headers: IncomingHttpHeaders): CorsPreflight | undefined {
    if (method !== 'OPTIONS') return undefined;
    const origin = headers.origin;
    const requestMethod = headers['access-control-request-method'];
    if (!origin || typeof requestMethod !== 'string' || requestMethod === '') return undefined;
    const allowed = this.#allowed(origin);
    if (!allowed && this.#forwardUnmatched) return FORWARD;
    // An unmatched preflight under IGNORE gets the same reply without allow-origin, as Envoy sends
    // it: the browser fails the preflight on the missing header alone.
    const out: Record<string, string> = {};
    if (allowed) out['access-control-allow-origin'] = origin;
    if (this.#credentials) out['access-control-allow-credentials'] = 'true';
    if (this.#methods !== undefined) {
      out['access-control-allow-methods'] = this.#methods === '*' ? requestMethod : this.#methods;
    }
    if (this.#headers !== undefined) {
      const value = this.#headers === '*' ? headers['access-control-request-headers'] : this.#headers;
      // Envoy would send an empty header when the preflight names none; no header means the same.
      if (value) out['access-control-allow-headers'] = value;
    }
    if (this.#maxAge !== undefined) out['access-control-max-age'] = this.#maxAge;
    return { answer: { status: 200, headers: out } };
  }

  /**
   * The headers to add to the upstream's response to a request from `origin` (the request's Origin
   * header), or undefined when there is no origin or it is not allowed.
   */
  responseHeaders(origin: string | undefined): Record<string, string> | undefined {
    if (!origin || !this.#allowed(origin)) return undefined;
    const out: Record<string, string> = { 'access-control-allow-origin': origin };
    if (this.#credentials) out['access-control-allow-credentials'] = 'true';
    if (this.#expose !== undefined) out['access-control-expose-headers'] = this.#expose;
    return out;
  }

  #allowed(origin: string): boolean {
    if (this.#anyOrigin) return true;
    for (const m of this.#origins) if (m(origin)) return true;
    return false;
  }
}

// An empty list is no header at all, as Envoy skips an empty joined value.
function joined(values: string[] | undefined): string | undefined {
  return values === undefined || values.length === 0 ? undefined : values.join(',');
}
