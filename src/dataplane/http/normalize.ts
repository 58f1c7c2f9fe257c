// Path and host normalization run before routing and authorization alike, so that both see the path
// the app is sent (it goes upstream normalized, as Envoy forwards it): `/a/../admin`,
// `/a/%2e%2e/admin`, `/a/..\admin` and `/admin#x` are all `/admin` (CVE-2019-9901, CVE-2021-39156).
// The modes are Istio's meshConfig.pathNormalization, with the Envoy settings Istio maps them to:
//   NONE                      normalize_path off: the path as sent
//   BASE (the default)        normalize_path: percent-encoded unreserved characters decoded once, the
//                             hex of every other escape upper-cased, `\` → `/`, `.` and `..` resolved
//   MERGE_SLASHES             BASE, then runs of `/` merged (merge_slashes)
//   DECODE_AND_MERGE_SLASHES  `%2F` and `%5C` decoded first (escaped slashes UNESCAPE_AND_FORWARD),
//                             then MERGE_SLASHES
// In every mode a fragment is cut and NUL is refused. `;` means nothing to Envoy's normalization:
// `/a;x` stays `/a;x`, and `..;` is not a dot segment.
import type { PathNormalization } from '../../compile/snapshot.ts';

export type Normalized = { ok: true; path: string; query: string } | { ok: false; reason: string };

/** One mode's normalization of a request target (origin form), chosen when a snapshot is applied. */
export type Normalizer = (target: string) => Normalized;

const UNRESERVED = new Uint8Array(128);
for (const c of '-._~') UNRESERVED[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) UNRESERVED[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) UNRESERVED[c] = UNRESERVED[c + 0x20] = 1;

const ESCAPE = /%([0-9a-fA-F]{2})/g;
const SLASHES = /\/{2,}/g;

function decoder(slashes: boolean): (m: string, hex: string) => string {
  return (_m, hex) => {
    const c = Number.parseInt(hex, 16);
    if (UNRESERVED[c] === 1 || (slashes && (c === 0x2f || c === 0x5c))) return String.fromCharCode(c);
    return `%${hex.toUpperCase()}`;
  };
}

function asSent(path: string): string {
  return path;
}

const MODES: Record<PathNormalization, { decodeSlashes: boolean; merge: boolean } | undefined> = {
  NONE: undefined,
  BASE: { decodeSlashes: false, merge: false },
  MERGE_SLASHES: { decodeSlashes: false, merge: true },
  DECODE_AND_MERGE_SLASHES: { decodeSlashes: true, merge: true },
};

/** Throws for a mode this proxy does not know, which rejects the snapshot that names it. */
export function pathNormalizer(mode: PathNormalization): Normalizer {
  if (!Object.hasOwn(MODES, mode)) throw new Error(`unknown path normalization ${JSON.stringify(mode)}`);
  const m = MODES[mode];
  if (!m) return (target) => split(target, asSent);
  const decode = decoder(m.decodeSlashes);
  const merge = m.merge;
  // The order is Envoy's: escaped slashes, then RFC 3986 normalization, then merging.
  const normalizePath = (p: string): string => {
    let path = p;
    if (path.includes('%')) path = path.replace(ESCAPE, decode);
    if (path.includes('\\')) path = path.replaceAll('\\', '/');
    if (path.includes('/.')) path = removeDotSegments(path);
    if (merge && path.includes('//')) path = path.replace(SLASHES, '/');
    return path;
  };
  return (target) => split(target, normalizePath);
}

function split(target: string, normalizePath: (path: string) => string): Normalized {
  let raw = target;
  const hash = raw.indexOf('#');
  if (hash >= 0) raw = raw.slice(0, hash);
  const q = raw.indexOf('?');
  const query = q >= 0 ? raw.slice(q) : '';
  const path = q >= 0 ? raw.slice(0, q) : raw;
  if (path.includes('\0') || path.includes('%00'))
    return { ok: false, reason: 'path contains a NUL character' };
  if (!path.startsWith('/')) return { ok: false, reason: 'path must start with /' };
  return { ok: true, path: normalizePath(path), query };
}

function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segs = path.split('/');
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i];
    if (s === '.') {
      if (i === segs.length - 1) out.push('');
    } else if (s === '..') {
      out.pop();
      if (i === segs.length - 1) out.push('');
    } else out.push(s);
  }
  return `/${out.join('/')}`;
}

/** The Host header sent upstream: the client's case, without the trailing dot of a fully qualified name. */
export function stripTrailingHostDot(authority: string): string {
  const n = authority.length;
  if (n < 2 || authority.charCodeAt(0) === 0x5b) return authority;
  if (authority.charCodeAt(n - 1) === 0x2e) return authority.slice(0, -1);
  const dotColon = authority.indexOf('.:');
  return dotColon > 0 ? authority.slice(0, dotColon) + authority.slice(dotColon + 1) : authority;
}

/**
 * The authority as `hosts` and virtual hosts match it: lower case, no trailing dot
 * (`Example.COM.:80` → `example.com:80`), as Envoy's strip_trailing_host_dot.
 */
export function normalizeAuthority(authority: string): string {
  return stripTrailingHostDot(authority).toLowerCase();
}
