// Virtual IPs of Services, like Kubernetes' ClusterIPs: a Service's own `spec.clusterIP` when it names
// an IPv4 address, else one taken from 10.96.0.0/12 (kube-apiserver's default service range) by a hash
// of the service's FQDN. Transparent capture needs them: the app resolves `reviews` to its VIP, and the
// sidecar maps the captured connection's original destination back to the service host. The local
// runtime (hosts files) and compile (the outbound listener's `addresses`) both call this on the same
// Services, so they agree without a registry of allocations; a hash collision is settled in FQDN order.
import { contentHash } from './hash.ts';

export interface VipService {
  fqdn: string;
  clusterIP?: string;
}

const BASE = (10 << 24) | (96 << 16);
const SPAN = 1 << 20;

function ipv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function isIpv4(s: string | undefined): s is string {
  return s !== undefined && /^(\d{1,3})(\.\d{1,3}){3}$/.test(s) && s.split('.').every((p) => Number(p) < 256);
}

/** FQDN → VIP for every Service (those with `clusterIP: None`, headless, get none). */
export function clusterIps(services: Iterable<VipService>): Map<string, string> {
  const out = new Map<string, string>();
  const taken = new Set<string>();
  const pending: string[] = [];
  const sorted = [...services].sort((a, b) => (a.fqdn < b.fqdn ? -1 : a.fqdn > b.fqdn ? 1 : 0));
  for (const s of sorted) {
    if (isIpv4(s.clusterIP)) {
      out.set(s.fqdn, s.clusterIP);
      taken.add(s.clusterIP);
    } else if (s.clusterIP !== 'None') pending.push(s.fqdn);
  }
  for (const fqdn of pending) {
    let n = Number.parseInt(contentHash(fqdn).slice(-5), 16) % SPAN;
    // Skip the range's network address and a taken one (collisions walk on, in FQDN order).
    while (n === 0 || taken.has(ipv4(BASE + n))) n = (n + 1) % SPAN;
    const ip = ipv4(BASE + n);
    taken.add(ip);
    out.set(fqdn, ip);
  }
  return out;
}
