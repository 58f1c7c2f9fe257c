// AuthorizationPolicy on TCP connections, as pilot builds the RBAC of a TCP filter chain
// (pilot/pkg/security/authz/model, `checkError`): a TCP connection has no method, path, host,
// headers or JWT. An ALLOW rule that asks about any of them is dropped, so ALLOW only gets stricter;
// in a DENY or AUDIT rule the HTTP-only conditions are left out, so the rule gets wider — a DENY
// rule with only HTTP fields denies every connection. CUSTOM rules cannot be put to an HTTP
// authorizer from a TCP connection: they are kept whole, and what they match is denied.
import type {
  Authorization,
  AuthorizationCondition,
  AuthorizationOperation,
  AuthorizationPolicyRules,
  AuthorizationRule,
  AuthorizationSource,
} from './snapshot.ts';

const HTTP_SOURCE = ['requestPrincipals', 'notRequestPrincipals'] as const;
const HTTP_OPERATION = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;

/** `when` keys only an HTTP request has (Istio's attribute table). */
export function httpOnlyKey(key: string): boolean {
  return key.startsWith('request.');
}

function sourceHttp(s: AuthorizationSource): boolean {
  return HTTP_SOURCE.some((k) => s[k] !== undefined);
}

function operationHttp(o: AuthorizationOperation): boolean {
  return HTTP_OPERATION.some((k) => o[k] !== undefined);
}

function usesHttp(r: AuthorizationRule): boolean {
  return (
    (r.from ?? []).some(sourceHttp) ||
    (r.to ?? []).some(operationHttp) ||
    (r.when ?? []).some((c) => httpOnlyKey(c.key))
  );
}

function without<T extends object>(o: T, keys: readonly string[]): T {
  const out = { ...o } as Record<string, unknown>;
  for (const k of keys) delete out[k];
  return out as T;
}

/** The rule with its HTTP-only fields left out; a source or operation left empty matches anything. */
function widened(r: AuthorizationRule): AuthorizationRule {
  const when: AuthorizationCondition[] | undefined = r.when?.filter((c) => !httpOnlyKey(c.key));
  return {
    ...(r.from ? { from: r.from.map((s) => without(s, HTTP_SOURCE)) } : {}),
    ...(r.to ? { to: r.to.map((o) => without(o, HTTP_OPERATION)) } : {}),
    ...(when?.length ? { when } : {}),
  };
}

function policies(
  list: AuthorizationPolicyRules[] | undefined,
  rule: (r: AuthorizationRule) => AuthorizationRule | undefined,
): AuthorizationPolicyRules[] | undefined {
  if (!list) return undefined;
  return list.map((p) => ({
    ...p,
    rules: p.rules.flatMap((r) => {
      const out = rule(r);
      return out ? [out] : [];
    }),
  }));
}

/** Unchanged (the same object) when no rule uses an HTTP-only field. */
export function tcpAuthorization(a: Authorization): Authorization {
  const all = [...(a.allow ?? []), ...(a.deny ?? []), ...(a.audit ?? [])];
  if (!all.some((p) => p.rules.some(usesHttp))) return a;
  const wider = (r: AuthorizationRule) => (usesHttp(r) ? widened(r) : r);
  return {
    ...a,
    ...(a.deny ? { deny: policies(a.deny, wider) } : {}),
    // A policy whose every rule is dropped stays: an ALLOW policy that matches nothing denies all.
    ...(a.allow ? { allow: policies(a.allow, (r) => (usesHttp(r) ? undefined : r)) } : {}),
    ...(a.audit ? { audit: policies(a.audit, wider) } : {}),
  };
}
