// Host names in the mesh vocabulary: short names resolve relative to the namespace of the resource
// that mentions them, as Istio does.

export const CLUSTER_DOMAIN = 'svc.cluster.local';

export function serviceFqdn(name: string, namespace: string): string {
  return `${name}.${namespace}.${CLUSTER_DOMAIN}`;
}

/**
 * `reviews` in namespace `default` → `reviews.default.svc.cluster.local`. As in Istio, only a name
 * without dots is short: `example.com` is a host of its own, so write service FQDNs in full.
 */
export function resolveHost(host: string, namespace: string): string {
  const h = host.toLowerCase();
  if (h === '*' || h.startsWith('*.') || h.includes('.')) return h;
  return serviceFqdn(h, namespace);
}

/** Does `pattern` (an FQDN or `*.suffix` or `*`) cover `host`? */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) || host === pattern.slice(2);
  return pattern === host;
}

/**
 * The names an app may use for a service: Kubernetes DNS lets a client in the same namespace say
 * `reviews`, any client say `reviews.default`, `reviews.default.svc` or the FQDN; each with and
 * without the port.
 */
export function serviceDomains(fqdn: string, port: number, clientNamespace: string): string[] {
  const suffix = `.${CLUSTER_DOMAIN}`;
  const names = [fqdn];
  if (fqdn.endsWith(suffix)) {
    const [name, ns] = fqdn.slice(0, -suffix.length).split('.');
    names.push(`${name}.${ns}.svc`, `${name}.${ns}`);
    if (ns === clientNamespace) names.push(name);
  }
  return names.flatMap((n) => [n, `${n}:${port}`]);
}

export function outboundClusterName(port: number, subset: string | undefined, fqdn: string): string {
  return `outbound|${port}|${subset ?? ''}|${fqdn}`;
}

/** Istio's SNI for sidecar-to-sidecar traffic; the server side reads the service port from it. */
export function outboundSni(port: number, subset: string | undefined, fqdn: string): string {
  return `outbound_.${port}_.${subset ?? ''}_.${fqdn}`;
}

export function parseOutboundSni(sni: string): { port: number; subset: string; host: string } | undefined {
  const m = /^outbound_\.(\d+)_\.([^_]*)_\.(.+)$/.exec(sni);
  return m ? { port: Number(m[1]), subset: m[2], host: m[3] } : undefined;
}
