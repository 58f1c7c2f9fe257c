// RequestAuthentication → the JWT rules of a proxy's listener, with Istio's scoping: a policy in the
// root namespace without selector applies mesh-wide, one without selector to its namespace, one with a
// selector to the matching workloads of its namespace (of every namespace, from the root namespace), one with targetRefs to the Gateway (or, for a
// sidecar, the Service) it names. Every policy that applies contributes its rules, oldest first, as
// Istio combines them. Remote key sets come from the control plane's fetches (CompileInput.jwks).
import type { JWTRule, PolicyTargetReference, RequestAuthenticationSpec } from '../api/kinds/index.ts';
import type { Resource } from '../api/resource.ts';
import { jwksSource, labelsMatch, type MeshIndex } from './mesh-index.ts';
import type { JwtLocations, JwtRule, ProxyNode } from './snapshot.ts';

/** What a listener is, for targetRefs: the Gateways it serves (gateway) or the Services it backs (sidecar). */
export interface JwtScope {
  node: ProxyNode;
  /** `ns/name` of the Gateway resources (gateway) or of the Services (sidecar). */
  targets: string[];
}

function refs(spec: RequestAuthenticationSpec): PolicyTargetReference[] {
  return spec.targetRefs ?? (spec.targetRef ? [spec.targetRef] : []);
}

function applies(ra: Resource<RequestAuthenticationSpec>, scope: JwtScope, root: string): boolean {
  const { node } = scope;
  const ns = ra.metadata.namespace;
  const targetRefs = refs(ra.spec);
  if (targetRefs.length > 0) {
    const kind = node.role === 'gateway' ? 'Gateway' : 'Service';
    return targetRefs.some((r) => r.kind === kind && scope.targets.includes(`${ns}/${r.name}`));
  }
  const labels = ra.spec.selector?.matchLabels ?? {};
  // A selector in the root namespace matches workloads of every namespace (istio/api, RequestAuthentication.selector).
  if (Object.keys(labels).length > 0)
    return (ns === node.namespace || ns === root) && labelsMatch(labels, node.labels);
  return ns === root || ns === node.namespace;
}

function locations(rule: JWTRule): JwtLocations {
  const headers = (rule.fromHeaders ?? []).map((h) =>
    h.prefix ? { name: h.name.toLowerCase(), prefix: h.prefix } : { name: h.name.toLowerCase() },
  );
  const params = rule.fromParams ?? [];
  const cookies = rule.fromCookies ?? [];
  // Envoy's defaults, only when no location at all is given.
  if (headers.length === 0 && params.length === 0 && cookies.length === 0)
    return { headers: [{ name: 'authorization', prefix: 'Bearer ' }], params: ['access_token'], cookies };
  return { headers, params, cookies };
}

function compileRule(index: MeshIndex, ra: Resource<RequestAuthenticationSpec>, i: number): JwtRule {
  const rule = ra.spec.jwtRules![i];
  const out: JwtRule = {
    origin: `RequestAuthentication ${ra.metadata.namespace}/${ra.metadata.name} jwtRules[${i}]`,
    issuer: rule.issuer,
    locations: locations(rule),
  };
  if (rule.audiences?.length) out.audiences = rule.audiences;
  if (rule.jwks !== undefined) out.jwks = rule.jwks;
  else {
    const source = jwksSource(rule);
    const state = index.jwks.get(source);
    if (state?.jwks !== undefined) out.jwks = state.jwks;
    else out.jwksError = state?.error ?? `key set from ${source} not fetched yet`;
  }
  if (rule.outputPayloadToHeader) out.outputPayloadToHeader = rule.outputPayloadToHeader.toLowerCase();
  if (rule.outputClaimToHeaders?.length)
    out.outputClaimToHeaders = rule.outputClaimToHeaders.map((c) => ({
      header: c.header.toLowerCase(),
      claim: c.claim,
    }));
  if (rule.forwardOriginalToken) out.forwardOriginalToken = true;
  return out;
}

/** The rules a listener verifies, or undefined when no RequestAuthentication applies to it. */
export function jwtRules(index: MeshIndex, scope: JwtScope): JwtRule[] | undefined {
  const out: JwtRule[] = [];
  for (const ra of index.requestAuthentications) {
    if (!applies(ra, scope, index.meshConfig.rootNamespace)) continue;
    for (let i = 0; i < (ra.spec.jwtRules ?? []).length; i++) out.push(compileRule(index, ra, i));
  }
  return out.length ? out : undefined;
}

/** Every remote key set some RequestAuthentication needs, with the longest fetch timeout asked for it. */
export function jwksSources(
  policies: readonly Resource<RequestAuthenticationSpec>[],
  timeoutMs: (rule: JWTRule) => number,
): Map<string, { issuer: string; jwksUri?: string; timeoutMs: number }> {
  const out = new Map<string, { issuer: string; jwksUri?: string; timeoutMs: number }>();
  for (const ra of policies) {
    for (const rule of ra.spec.jwtRules ?? []) {
      if (rule.jwks !== undefined) continue;
      const key = jwksSource(rule);
      const t = timeoutMs(rule);
      const prev = out.get(key);
      if (!prev) out.set(key, { issuer: rule.issuer, jwksUri: rule.jwksUri, timeoutMs: t });
      else prev.timeoutMs = Math.max(prev.timeoutMs, t);
    }
  }
  return out;
}
