// The HTTP API under /api/v1: the one front for the CLI (and later the console). JSON in and out;
// errors carry a stable TRL_ code, a message and, for validation, every issue with its position.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { lookupKind } from '../api/kinds/index.ts';
import { kindKey, type Resource, resourceRef } from '../api/resource.ts';
import { validateText } from '../api/validate.ts';
import { type Issue, TrellisError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import type { PushServer } from './push/push.ts';
import type { Registry } from './registry/registry.ts';
import { keyOf, type Op, type ResourceKey, type Store } from './store/store.ts';

export const API_VERSION = 'v1';

export interface Source {
  file?: string;
  text: string;
}

export interface ApplyResult {
  revision: number;
  dryRun: boolean;
  results: { resource: string; action: 'created' | 'configured' | 'unchanged' | 'deleted' }[];
  warnings: Issue[];
}

export interface ApiDeps {
  store: Store;
  push: PushServer;
  registry: Registry;
  version: string;
  log: Logger;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 16 * 1024 * 1024)
      throw new TrellisError('TRL_INVALID_ARGUMENT', 'request body is larger than 16 MiB');
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw new TrellisError('TRL_INVALID_ARGUMENT', 'request body is not JSON');
  }
}

/** Validates every source; any error anywhere rejects the whole request. */
function validateSources(sources: Source[]): { resources: Resource[]; warnings: Issue[] } {
  const resources: Resource[] = [];
  const errors: Issue[] = [];
  const warnings: Issue[] = [];
  for (const s of sources) {
    const r = validateText(s.text, s.file);
    errors.push(...r.errors);
    warnings.push(...r.warnings);
    resources.push(...r.resources);
  }
  if (errors.length > 0) {
    const n = errors.length;
    throw new TrellisError('TRL_VALIDATION', `${n} error${n > 1 ? 's' : ''} found; nothing was applied`, {
      issues: errors,
    });
  }
  const seen = new Set<string>();
  for (const r of resources) {
    const k = `${kindKey(r.apiVersion, r.kind)}|${r.metadata.namespace}|${r.metadata.name}`;
    if (seen.has(k))
      throw new TrellisError(
        'TRL_VALIDATION',
        `${resourceRef(r)} is defined more than once; nothing was applied`,
      );
    seen.add(k);
  }
  return { resources, warnings };
}

/** What the store compares too: a write that changes none of these is no change. */
function sameContent(a: Resource, b: Resource): boolean {
  const view = (r: Resource) =>
    JSON.stringify([r.apiVersion, r.spec, r.metadata.labels, r.metadata.annotations]);
  return view(a) === view(b);
}

function parseSources(body: unknown): { sources: Source[]; dryRun: boolean } {
  const b = body as { sources?: Source[]; dryRun?: boolean };
  if (!Array.isArray(b.sources) || b.sources.some((s) => typeof s?.text !== 'string')) {
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      'body must be {"sources": [{"file": "...", "text": "..."}], "dryRun": false}',
    );
  }
  return { sources: b.sources, dryRun: b.dryRun === true };
}

export async function apply(deps: ApiDeps, sources: Source[], dryRun: boolean): Promise<ApplyResult> {
  const { resources, warnings } = validateSources(sources);
  const results: ApplyResult['results'] = resources.map((r) => {
    const cur = deps.store.get(keyOf(r));
    const same = cur && sameContent(cur, r);
    return { resource: resourceRef(r), action: !cur ? 'created' : same ? 'unchanged' : 'configured' };
  });
  if (dryRun) return { revision: deps.store.revision, dryRun, results, warnings };
  // A document that carries a resourceVersion applies only over that version (optimistic concurrency).
  const ops: Op[] = resources.map((r) => ({
    type: 'put',
    resource: r,
    expectVersion: r.metadata.resourceVersion,
  }));
  const { revision } = await deps.store.commit(ops);
  return { revision, dryRun, results, warnings };
}

/** Deletes all the named resources in one commit, or none of them if any is missing. */
async function remove(
  deps: ApiDeps,
  refs: { key: ResourceKey; ref: string }[],
  dryRun: boolean,
): Promise<ApplyResult> {
  for (const { key, ref } of refs) {
    if (!deps.store.get(key))
      throw new TrellisError('TRL_NOT_FOUND', `${ref} not found; nothing was deleted`);
  }
  const results: ApplyResult['results'] = refs.map(({ ref }) => ({ resource: ref, action: 'deleted' }));
  if (dryRun) return { revision: deps.store.revision, dryRun, results, warnings: [] };
  const { revision } = await deps.store.commit(refs.map(({ key }) => ({ type: 'delete', key })));
  return { revision, dryRun, results, warnings: [] };
}

/** `{"sources": [...]}` (files, as for apply) or `{"refs": [{"kind", "namespace", "name"}]}`. */
function deleteRefs(body: unknown): { refs: { key: ResourceKey; ref: string }[]; dryRun: boolean } {
  const b = body as { refs?: { kind?: unknown; namespace?: unknown; name?: unknown }[]; dryRun?: boolean };
  if (b.refs === undefined) {
    const { sources, dryRun } = parseSources(body);
    const refs = validateSources(sources).resources.map((r) => ({ key: keyOf(r), ref: resourceRef(r) }));
    return { refs, dryRun };
  }
  if (
    !Array.isArray(b.refs) ||
    b.refs.some((r) => typeof r?.kind !== 'string' || typeof r.name !== 'string')
  ) {
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      'body must be {"refs": [{"kind": "vs", "namespace": "default", "name": "reviews"}]}',
    );
  }
  const refs = b.refs.map((r) => {
    const info = kindOrThrow(r.kind as string);
    const namespace = typeof r.namespace === 'string' ? r.namespace : 'default';
    return {
      key: { kind: `${info.group}/${info.kind}`, namespace, name: r.name as string },
      ref: `${info.kind} ${namespace}/${r.name}`,
    };
  });
  return { refs, dryRun: b.dryRun === true };
}

function kindOrThrow(name: string) {
  const info = lookupKind(name);
  if (!info)
    throw new TrellisError(
      'TRL_NOT_FOUND',
      `unknown kind "${name}"; try e.g. virtualservice (vs), destinationrule (dr), gateway (gw), service (svc), workload`,
    );
  return info;
}

async function route(deps: ApiDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://api');
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] !== 'api' || parts[1] !== API_VERSION)
    throw new TrellisError(
      'TRL_NOT_FOUND',
      `no such endpoint ${url.pathname}; the API lives under /api/${API_VERSION}`,
    );
  const [, , what, ...rest] = parts;
  const method = req.method ?? 'GET';
  if (what === 'version' && method === 'GET')
    return send(res, 200, { version: deps.version, revision: deps.store.revision });
  if (what === 'apply' && method === 'POST') {
    const { sources, dryRun } = parseSources(await readJson(req));
    return send(res, 200, await apply(deps, sources, dryRun));
  }
  if (what === 'delete' && method === 'POST') {
    const { refs, dryRun } = deleteRefs(await readJson(req));
    return send(res, 200, await remove(deps, refs, dryRun));
  }
  if (what === 'resources') {
    // /resources/<kind>[/<namespace>[/<name>]]
    const [kindName, namespace, name] = rest;
    if (!kindName) return send(res, 200, { items: deps.store.list() });
    const info = kindOrThrow(kindName);
    const key = `${info.group}/${info.kind}`;
    if (method === 'GET' && !name) {
      const ns = namespace && namespace !== '*' ? namespace : undefined;
      return send(res, 200, { items: deps.store.list({ kind: key, namespace: ns }) });
    }
    if (!namespace || !name)
      throw new TrellisError('TRL_INVALID_ARGUMENT', 'expected /resources/<kind>/<namespace>/<name>');
    const rkey = { kind: key, namespace, name };
    if (method === 'GET') {
      const r = deps.store.get(rkey);
      if (!r) throw new TrellisError('TRL_NOT_FOUND', `${info.kind} ${namespace}/${name} not found`);
      return send(res, 200, r);
    }
    if (method === 'DELETE') {
      if (!deps.store.get(rkey))
        throw new TrellisError('TRL_NOT_FOUND', `${info.kind} ${namespace}/${name} not found`);
      const { revision } = await deps.store.commit([{ type: 'delete', key: rkey }]);
      return send(res, 200, {
        revision,
        results: [{ resource: `${info.kind} ${namespace}/${name}`, action: 'deleted' }],
      });
    }
  }
  if (what === 'proxy-status' && method === 'GET') {
    return send(res, 200, {
      revision: deps.store.revision,
      convergence: deps.push.lastConvergence ?? null,
      proxies: deps.push.status(),
    });
  }
  if (what === 'proxy-config' && method === 'GET' && rest[0]) {
    const snap = deps.push.snapshotOf(rest[0]);
    if (!snap) {
      const why = deps.push.connected(rest[0]) ? 'has not ACKed any snapshot yet' : 'is not connected';
      throw new TrellisError('TRL_NOT_FOUND', `proxy "${rest[0]}" ${why}; see trellis proxy-status`);
    }
    return send(res, 200, snap);
  }
  if (what === 'registry' && method === 'GET') return send(res, 200, { instances: deps.registry.list() });
  throw new TrellisError('TRL_NOT_FOUND', `no such endpoint ${method} ${url.pathname}`);
}

export function createApiServer(deps: ApiDeps): http.Server {
  return http.createServer((req, res) => {
    route(deps, req, res).catch((err: unknown) => {
      if (err instanceof TrellisError) return send(res, err.status, err.toJSON());
      deps.log.error('api request failed', { error: String(err), url: req.url });
      send(res, 500, { code: 'TRL_INTERNAL', message: 'internal error; see the control plane log' });
    });
  });
}
