// What the authorize phase asks an external authorizer and what it gets back, whichever protocol
// (HTTP or gRPC) the provider speaks. The attributes are read off the exchange when the check is
// made; the answer is applied by the phase (ext-authz.ts).
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { stringMatcher } from '../authorization.ts';

/** The request as the authorizer sees it. */
export interface CheckInput {
  method: string;
  /** Normalized path and query. */
  path: string;
  /** As the client sent it (Host, `:authority`). */
  host: string;
  /** HTTP/2 pseudo-headers included; repeated headers are arrays. */
  headers: IncomingHttpHeaders;
  protocol: 'HTTP/1.1' | 'HTTP/2';
  requestId: string | undefined;
  source: { address: string | undefined; port: number | undefined; principal: string | undefined };
  destination: { address: string | undefined; port: number; principal: string };
  /** The buffered body when the provider asks for it, and whether it was cut at the limit. */
  body: Buffer | undefined;
  partialBody: boolean;
}

export type CheckResult =
  | {
      kind: 'allow';
      /** Set on (or, `append`, added to) the upstream request. */
      upstream: { name: string; value: string; append: boolean }[];
      removeUpstream: string[];
      /** Added to the response the client gets. */
      downstream: { name: string; value: string }[];
    }
  | { kind: 'deny'; status: number; headers: OutgoingHttpHeaders; body: string }
  | { kind: 'error'; message: string };

export type Check = (input: CheckInput) => Promise<CheckResult>;

/** Istio's header lists: `x-*` prefix, `*-x` suffix, else exact, all case-insensitive. */
export function headerMatcher(patterns: readonly string[] | undefined): (name: string) => boolean {
  if (!patterns?.length) return () => false;
  const m = stringMatcher(patterns.map((p) => p.toLowerCase()));
  return (name) => m(name);
}

/** A header's values as one: repeated values joined with `,` (CVE-2021-32777: not only the last). */
export function joined(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}
