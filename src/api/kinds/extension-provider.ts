// MeshConfig `extensionProviders`: the external authorizers CUSTOM AuthorizationPolicies name
// (`envoyExtAuthzHttp`, `envoyExtAuthzGrpc`) are checked in full; the tracing, metrics and access
// log providers are accepted with a warning that Trellis does not use them.
import {
  any,
  array,
  boolean,
  type Ctx,
  duration,
  fail,
  isObject,
  join,
  map,
  object,
  port,
  string,
  uint32,
  type Validator,
  warn,
} from '../schema.ts';
import { isHeaderName, NOT_ENFORCED, nonEmptyString } from './common.ts';
import { isDns1123Label, isDns1123Subdomain } from './syntax.ts';

export interface ExtAuthzBodySettings {
  maxRequestBytes?: number;
  allowPartialMessage?: boolean;
  packAsBytes?: boolean;
}

/** Fields both ext-authz providers have. */
export interface ExtAuthzCommon {
  /** `<host>` or `<namespace>/<host>`. */
  service: string;
  port: number;
  timeout?: string;
  failOpen?: boolean;
  /** An HTTP status, as a string in Istio's proto; a number is taken too. */
  statusOnError?: string | number;
  clearRouteCache?: boolean;
  includeRequestBodyInCheck?: ExtAuthzBodySettings;
}

export interface ExtAuthzHttpSpec extends ExtAuthzCommon {
  pathPrefix?: string;
  includeRequestHeadersInCheck?: string[];
  /** The older name of includeRequestHeadersInCheck. */
  includeHeadersInCheck?: string[];
  includeAdditionalHeadersInCheck?: Record<string, string>;
  headersToUpstreamOnAllow?: string[];
  headersToDownstreamOnDeny?: string[];
  headersToDownstreamOnAllow?: string[];
}

export type ExtAuthzGrpcSpec = ExtAuthzCommon;

export interface ExtensionProvider {
  name: string;
  envoyExtAuthzHttp?: ExtAuthzHttpSpec;
  envoyExtAuthzGrpc?: ExtAuthzGrpcSpec;
  [kind: string]: unknown;
}

/** Istio's default for the ext-authz `timeout` (mesh/v1alpha1/config.proto: "Default timeout is 10 minutes"). */
export const DEFAULT_EXT_AUTHZ_TIMEOUT_MS = 600_000;

/** Every provider kind of `mesh/v1alpha1/config.proto` ExtensionProvider; the first two are enforced. */
export const EXTENSION_PROVIDER_KINDS = [
  'envoyExtAuthzHttp',
  'envoyExtAuthzGrpc',
  'zipkin',
  'lightstep',
  'datadog',
  'stackdriver',
  'opencensus',
  'skywalking',
  'opentelemetry',
  'prometheus',
  'envoyFileAccessLog',
  'envoyHttpAls',
  'envoyTcpAls',
  'envoyOtelAls',
  'sds',
] as const;

/**
 * `foo.ns.svc.cluster.local` or `ns/foo.ns.svc.cluster.local`, as Istio's
 * validateExtensionProviderService takes it: a host name without wildcards, optionally namespaced.
 */
function service(): Validator {
  return string({
    check: (v, path, ctx) => {
      const slash = v.indexOf('/');
      const ns = slash < 0 ? undefined : v.slice(0, slash);
      const host = slash < 0 ? v : v.slice(slash + 1);
      if (ns !== undefined && !isDns1123Label(ns))
        return fail(
          ctx,
          path,
          `${JSON.stringify(ns)} is not a namespace name: expected <namespace>/<host> with a DNS-1123 label`,
        );
      if (!isDns1123Subdomain(host))
        fail(
          ctx,
          path,
          `${JSON.stringify(host)} is not a service host name: expected e.g. ext-authz.foo.svc.cluster.local (no wildcards, lower case)`,
        );
    },
  });
}

/** A header name with an optional `*` at one end: Istio makes it a prefix or suffix match. */
function headerPattern(): Validator {
  return string({
    check: (v, path, ctx) => {
      const bare = v === '*' ? '' : v.startsWith('*') ? v.slice(1) : v.endsWith('*') ? v.slice(0, -1) : v;
      if (v !== '*' && !isHeaderName(bare))
        fail(
          ctx,
          path,
          `${JSON.stringify(v)} is not a header name: expected letters, digits, "-" or "_", with an optional "*" at the start (suffix match) or the end (prefix match)`,
        );
    },
  });
}

function statusCode(): Validator {
  return (v, path, ctx) => {
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : Number.NaN;
    if (!Number.isInteger(n) || n < 100 || n > 599)
      fail(
        ctx,
        path,
        `expected an HTTP status code from 100 to 599 such as "503", found ${JSON.stringify(v)}`,
      );
  };
}

const common = {
  service: service(),
  port: port(),
  timeout: duration(),
  failOpen: boolean(),
  statusOnError: statusCode(),
  clearRouteCache: boolean(),
  includeRequestBodyInCheck: object({
    maxRequestBytes: uint32({ min: 1 }),
    allowPartialMessage: boolean(),
    packAsBytes: boolean(),
  }),
};

/** clearRouteCache asks Envoy to route again after the check: Trellis routes after authorize anyway. */
function checkCommon(v: Record<string, unknown>, path: string, ctx: Ctx): void {
  if (v.clearRouteCache !== undefined)
    warn(
      ctx,
      join(path, 'clearRouteCache'),
      `${NOT_ENFORCED}: Trellis routes after the check in every case, so headers the authorizer sets always take part in routing`,
    );
}

const httpProvider = object(
  {
    ...common,
    pathPrefix: string({
      check: (v, path, ctx) => {
        if (!v.startsWith('/')) fail(ctx, path, `pathPrefix must begin with "/", found ${JSON.stringify(v)}`);
      },
    }),
    includeRequestHeadersInCheck: array(headerPattern()),
    includeHeadersInCheck: array(headerPattern()),
    includeAdditionalHeadersInCheck: map(string(), {
      key: (k, path, ctx) => {
        if (typeof k !== 'string' || !isHeaderName(k))
          fail(ctx, path, `${JSON.stringify(k)} is not a header name`);
      },
    }),
    headersToUpstreamOnAllow: array(headerPattern()),
    headersToDownstreamOnDeny: array(headerPattern()),
    headersToDownstreamOnAllow: array(headerPattern()),
  },
  {
    required: ['service', 'port'],
    oneOf: [['includeRequestHeadersInCheck', 'includeHeadersInCheck']],
    deprecated: { includeHeadersInCheck: 'use includeRequestHeadersInCheck' },
    check: checkCommon,
  },
);

const grpcProvider = object(common, { required: ['service', 'port'], check: checkCommon });

const providerFields: Record<string, Validator> = {
  name: nonEmptyString(),
  envoyExtAuthzHttp: httpProvider,
  envoyExtAuthzGrpc: grpcProvider,
};
const NOT_USED = EXTENSION_PROVIDER_KINDS.slice(2);
for (const k of NOT_USED) providerFields[k] = any();

const provider = object(providerFields, {
  required: ['name'],
  exactlyOneOf: [EXTENSION_PROVIDER_KINDS],
  notEnforced: NOT_USED,
});

/** The list, with names unique: a CUSTOM policy names its provider. */
export const extensionProviders: Validator = (v, path, ctx) => {
  array(provider)(v, path, ctx);
  if (!Array.isArray(v)) return;
  const seen = new Map<string, number>();
  v.forEach((p, i) => {
    if (!isObject(p) || typeof p.name !== 'string') return;
    const first = seen.get(p.name);
    if (first !== undefined)
      fail(
        ctx,
        join(join(path, i), 'name'),
        `extension provider name ${JSON.stringify(p.name)} is already used by extensionProviders[${first}]: names must be unique`,
      );
    else seen.set(p.name, i);
  });
};
