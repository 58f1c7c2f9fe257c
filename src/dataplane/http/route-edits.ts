// What a route changes in the request and its response: header edits (VirtualService `headers`, at the
// destination and the route level) and rewrites (`rewrite.uri` of the matched prefix or the whole
// path, `uriRegexRewrite`, `rewrite.authority`). Compiled once per route when a snapshot is applied.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { HeaderOps, PathRewrite } from '../../compile/snapshot.ts';
import { parseRe2 } from '../../lib/re2/syntax.ts';

type Headers = OutgoingHttpHeaders | IncomingHttpHeaders;

/**
 * Envoy's order: remove, then set (replacing), then add (appending a value, which HTTP/1.1 writes as
 * another field line and Istio documents as a comma list).
 */
export function applyHeaderOps(h: Headers, ops: HeaderOps): void {
  if (ops.remove) for (const name of ops.remove) delete h[name];
  if (ops.set) for (const name in ops.set) h[name] = ops.set[name];
  if (ops.add) {
    for (const name in ops.add) {
      const prior = h[name];
      const v = ops.add[name];
      if (prior === undefined) h[name] = v;
      else if (Array.isArray(prior)) h[name] = [...prior, v];
      else if (name === 'set-cookie') h[name] = [String(prior), v];
      else h[name] = `${prior},${v}`;
    }
  }
}

/** The path (without its query) a route sends upstream. */
export type PathRewriter = (path: string) => string;

export function pathRewriter(r: PathRewrite): PathRewriter | undefined {
  if (r.regex) {
    const re = parseRe2(r.regex.match);
    // Envoy's substitution names groups \1..\9; RE2JS writes them $1..$9.
    const replacement = r.regex.rewrite.replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1');
    return (path) => re.matcher(path).replaceAll(replacement);
  }
  const uri = r.uri;
  if (uri === undefined) return undefined;
  const prefix = r.prefix;
  if (prefix === undefined) return () => uri;
  const n = prefix.length;
  return (path) => uri + path.slice(n);
}
