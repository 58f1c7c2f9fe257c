// The name and address grammars every kind shares: Kubernetes object names and label keys, DNS host
// names with Istio's wildcards, IP addresses and CIDR blocks. Pure predicates; the validators that
// turn them into messages live in common.ts.

const dns1123LabelRe = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1123SubdomainRe = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// Istio compares host names case-insensitively, so its host grammar accepts upper case.
const hostLabelRe = /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
const qualifiedNameRe = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const envVarNameRe = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ianaSvcNameRe = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && dns1123LabelRe.test(s);
}

export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && dns1123SubdomainRe.test(s);
}

function isHostLabel(s: string): boolean {
  return s.length <= 63 && hostLabelRe.test(s);
}

/**
 * A DNS name as Istio accepts it in `hosts`: `*`, or labels of which only the left-most may carry a
 * leading wildcard (`*.example.com`, `*example.com`).
 */
export function isWildcardHost(host: string): boolean {
  if (host === '*') return true;
  if (host.length === 0 || host.length > 255) return false;
  const labels = host.split('.');
  const first = labels[0];
  const firstOk = first.startsWith('*') ? first === '*' || isHostLabel(first.slice(1)) : isHostLabel(first);
  return firstOk && labels.slice(1).every(isHostLabel);
}

export function hasWildcard(host: string): boolean {
  return host.includes('*');
}

/** Whether a wildcard host pattern covers a concrete or narrower host (`*.a.com` covers `x.a.com`). */
export function hostCovers(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase();
  const h = host.toLowerCase();
  if (p === '*' || p === h) return true;
  if (!p.startsWith('*')) return false;
  const suffix = p.slice(1);
  if (h.startsWith('*')) return h.slice(1).endsWith(suffix) && h.length - 1 >= suffix.length;
  return h.endsWith(suffix) && h.length > suffix.length;
}

// ---- IP addresses --------------------------------------------------------------------------------

export function isIPv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

export function isIPv6(s: string): boolean {
  if (s.length < 2 || s.length > 45) return false;
  let groups = 8;
  let text = s;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    if (!isIPv4(tail)) return false;
    text = `${text.slice(0, lastColon + 1)}0`; // the dotted quad stands for two groups
    groups = 7;
  }
  const halves = text.split('::');
  if (halves.length > 2) return false;
  const group = /^[0-9a-fA-F]{1,4}$/;
  const split = (h: string) => (h === '' ? [] : h.split(':'));
  const head = split(halves[0]);
  if (!head.every((g) => group.test(g))) return false;
  if (halves.length === 1) return head.length === groups;
  const rest = split(halves[1]);
  return rest.every((g) => group.test(g)) && head.length + rest.length < groups;
}

export function isIP(s: string): boolean {
  return isIPv4(s) || isIPv6(s);
}

export function isCIDR(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash < 0) return false;
  const ip = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(bits)) return false;
  if (isIPv4(ip)) return Number(bits) <= 32;
  return isIPv6(ip) && Number(bits) <= 128;
}

export function isIPOrCIDR(s: string): boolean {
  return isIP(s) || isCIDR(s);
}

// ---- Kubernetes label syntax ------------------------------------------------------------------------

/** Why a label (or annotation) key is invalid, or undefined when it is valid. */
export function labelKeyProblem(key: string): string | undefined {
  if (key === '') return 'label key must not be empty';
  if (key.includes('*')) return `label key ${JSON.stringify(key)} must not contain the wildcard "*"`;
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && !isDns1123Subdomain(prefix)) {
    return `label key prefix ${JSON.stringify(prefix)} is not valid: expected a DNS-1123 subdomain such as "app.kubernetes.io"`;
  }
  if (name.length > 63) return `label key name ${JSON.stringify(name)} is longer than 63 characters`;
  if (!qualifiedNameRe.test(name)) {
    return `label key ${JSON.stringify(key)} is not valid: expected alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric, with an optional DNS prefix and "/"`;
  }
  return undefined;
}

/** Why a label value is invalid, or undefined when it is valid. */
export function labelValueProblem(value: string): string | undefined {
  if (value.includes('*')) return `label value ${JSON.stringify(value)} must not contain the wildcard "*"`;
  if (value.length > 63) return `label value ${JSON.stringify(value)} is longer than 63 characters`;
  if (value !== '' && !qualifiedNameRe.test(value)) {
    return `label value ${JSON.stringify(value)} is not valid: expected alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric`;
  }
  return undefined;
}

export function isEnvVarName(s: string): boolean {
  return envVarNameRe.test(s);
}

/** A named port as Kubernetes references it (`targetPort: http`): an IANA service name. */
export function isIanaSvcName(s: string): boolean {
  return s.length <= 15 && ianaSvcNameRe.test(s) && !s.includes('--') && /[a-z]/.test(s);
}
