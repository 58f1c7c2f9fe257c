// Path normalization runs before routing (and later authorization) so that `/a/../admin`,
// `/a/%2e%2e/admin` and `/admin#x` are all seen as `/admin` (CVE-2019-9901, CVE-2021-39156).
// This is Istio's default BASE normalization: RFC 3986 dot-segment removal after decoding
// percent-encoded unreserved characters; `%2F` and `%5C` stay encoded.

export type Normalized = { ok: true; path: string; query: string } | { ok: false; reason: string };

const unreserved = /%(2[dDeE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])/g;

export function normalizeRequestTarget(target: string): Normalized {
  let raw = target;
  const hash = raw.indexOf('#');
  if (hash >= 0) raw = raw.slice(0, hash);
  const q = raw.indexOf('?');
  const query = q >= 0 ? raw.slice(q) : '';
  let path = q >= 0 ? raw.slice(0, q) : raw;
  if (path.includes('\0') || /%00/.test(path)) return { ok: false, reason: 'path contains a NUL character' };
  if (!path.startsWith('/')) return { ok: false, reason: 'path must start with /' };
  if (path.includes('%'))
    path = path.replace(unreserved, (m) => String.fromCharCode(Number.parseInt(m.slice(1), 16)));
  if (path.includes('/.')) path = removeDotSegments(path);
  return { ok: true, path, query };
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
