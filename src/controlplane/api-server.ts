// The HTTP API under /api/v1: the one front for the CLI (and later the console). JSON in and out;
// errors carry a stable TRL_ code, a message and, for validation, every issue with its position.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { lookupKind } from '../api/kinds/index.ts';
import { kindKey, type Resource, resourceRef } from '../api/resource.ts';
import { validateText } from '../api/validate.ts';
import { customPolicyWarnings } from '../compile/ext-authz-warnings.ts';
import { CONVERTED_FROM_ANNOTATION } from '../compile/legacy-rbac.ts';
import { isMeshConfigMap } from '../compile/mesh-config.ts';
import { buildMeshIndex } from '../compile/mesh-index.ts';
import { sidecarConflicts } from '../compile/sidecar-scope.ts';
import type { ProxySnapshot } from '../compile/snapshot.ts';
import { type Issue, TrellisError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { checkAccess, readJsonBody } from './api-access.ts';
import type { RootRotation } from './ca/rotation.ts';
import type { PushServer } from './push/push.ts';
import { type PlatformInstances, parseInstanceRecord } from './registry/instances.ts';
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
  /** The platform's instances and their proxies' credentials; `trellis up`'s supervisor feeds it. */
  instances: PlatformInstances;
  /** The bearer credential every API request must carry. */
  adminToken: string;
  /** The CA's status and root rotation (/ca); absent when this API fronts no CA. */
  ca?: RootRotation;
  version: string;
  log: Logger;
}

/**
 * A response lists at most this many issues: a huge invalid document would otherwise produce a
 * response (and a heap) many times its size.
 */
const MAX_ISSUES = 100;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
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
    const shown = n > MAX_ISSUES ? ` (the first ${MAX_ISSUES} are listed)` : '';
    throw new TrellisError(
      'TRL_VALIDATION',
      `${n} error${n > 1 ? 's' : ''} found${shown}; nothing was applied`,
      { issues: errors.slice(0, MAX_ISSUES) },
    );
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
  warnings.push(...customWarnings(deps, resources), ...sidecarWarnings(deps, resources));
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

/**
 * CUSTOM policies the mesh cannot evaluate as they stand (an unknown provider, two providers on one
 * workload, dry run): accepted as Istio accepts them, with a warning, since the proxies deny what they match.
 */
function customWarnings(deps: ApiDeps, applied: Resource[]): Issue[] {
  const touches = applied.some(
    (r) =>
      (r.kind === 'AuthorizationPolicy' && (r.spec as { action?: string }).action === 'CUSTOM') ||
      isMeshConfigMap(r),
  );
  if (!touches) return [];
  const byKey = new Map(deps.store.list().map((r) => [resourceKey(r), r]));
  for (const r of applied) byKey.set(resourceKey(r), r);
  const proxies = deps.registry.list();
  const index = buildMeshIndex({
    revision: 0,
    resources: [...byKey.values()],
    proxies,
    mesh: { trustDomain: 'cluster.local' },
  });
  const ours = new Set(applied.map(resourceRef));
  return customPolicyWarnings(index, proxies)
    .filter(
      (w) =>
        !w.resource.startsWith('AuthorizationPolicy') ||
        ours.has(w.resource) ||
        applied.some(isMeshConfigMap),
    )
    .map((w) => ({ path: w.path, message: w.message, resource: w.resource }));
}

/** Sidecars that conflict with others (IST0110, IST0111): the oldest applies, the user is told. */
function sidecarWarnings(deps: ApiDeps, applied: Resource[]): Issue[] {
  if (!applied.some((r) => r.kind === 'Sidecar')) return [];
  const byKey = new Map(deps.store.list().map((r) => [resourceKey(r), r]));
  // Oldest wins: what this apply creates is newer than what the store holds, as the store will stamp it.
  const now = new Date().toISOString();
  for (const r of applied) {
    const creationTimestamp = byKey.get(resourceKey(r))?.metadata.creationTimestamp ?? now;
    byKey.set(resourceKey(r), { ...r, metadata: { ...r.metadata, creationTimestamp } });
  }
  const index = buildMeshIndex({
    revision: 0,
    resources: [...byKey.values()],
    proxies: [],
    mesh: { trustDomain: 'cluster.local' },
  });
  return sidecarConflicts(index.sidecars, deps.registry.list());
}

const resourceKey = (r: Resource) =>
  `${kindKey(r.apiVersion, r.kind)}|${r.metadata.namespace}|${r.metadata.name}`;

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

const AUTHORIZATION_POLICY = 'security.istio.io/AuthorizationPolicy';

/** What compile makes of the stored legacy RBAC resources (the trust domain plays no part in it). */
function convertedPolicies(deps: ApiDeps): Resource[] {
  const index = buildMeshIndex({
    revision: deps.store.revision,
    resources: deps.store.list(),
    proxies: deps.registry.list(),
    mesh: { trustDomain: '' },
  });
  return index.authorizationPolicies.filter((p) => p.metadata.annotations?.[CONVERTED_FROM_ANNOTATION]);
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
    const { sources, dryRun } = parseSources(await readJsonBody(req));
    return send(res, 200, await apply(deps, sources, dryRun));
  }
  if (what === 'delete' && method === 'POST') {
    const { refs, dryRun } = deleteRefs(await readJsonBody(req));
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
      const items = deps.store.list({ kind: key, namespace: ns });
      // The legacy RBAC kinds are enforced as AuthorizationPolicies: those are listed with the rest.
      if (key === AUTHORIZATION_POLICY)
        items.push(...convertedPolicies(deps).filter((p) => ns === undefined || p.metadata.namespace === ns));
      return send(res, 200, { items });
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
    return send(res, 200, redactCredentials(snap));
  }
  if (what === 'registry' && method === 'GET') return send(res, 200, { instances: deps.registry.list() });
  if (what === 'ca' && deps.ca) {
    if (method === 'GET' && rest.length === 0) return send(res, 200, deps.ca.status());
    // No body: a rotation has no options. Starting one twice is refused, never a second rotation.
    if (method === 'POST' && rest[0] === 'rotate' && rest.length === 1) {
      const status = await deps.ca.start();
      deps.log.info('root rotation started', { from: status.rotation?.from, to: status.rotation?.to });
      return send(res, 202, status);
    }
  }
  if (what === 'instances') return instances(deps, req, res, method, rest[0]);
  throw new TrellisError('TRL_NOT_FOUND', `no such endpoint ${method} ${url.pathname}`);
}

/**
 * /instances: the platform records the workload instances it starts; each registration answers the
 * bootstrap token for that instance's proxy alone.
 */
async function instances(
  deps: ApiDeps,
  req: IncomingMessage,
  res: ServerResponse,
  method: string,
  id: string | undefined,
): Promise<void> {
  if (method === 'GET' && !id) return send(res, 200, { instances: deps.instances.list() });
  if (method === 'POST' && !id) {
    const record = parseInstanceRecord(((await readJsonBody(req)) as { node?: unknown }).node);
    const token = await deps.instances.register(record);
    deps.log.info('workload instance registered', {
      proxy: record.id,
      namespace: record.namespace,
      serviceAccount: record.serviceAccount,
    });
    return send(res, 200, { id: record.id, token });
  }
  if (method === 'DELETE' && id) {
    if (!(await deps.instances.remove(id)))
      throw new TrellisError('TRL_NOT_FOUND', `workload instance ${id} is not registered`);
    return send(res, 200, { id, action: 'deleted' });
  }
  throw new TrellisError('TRL_NOT_FOUND', `no such endpoint ${method} ${req.url}`);
}

export function createApiServer(deps: ApiDeps): http.Server {
  return http.createServer((req, res) => {
    const routed = async () => {
      checkAccess(req, deps.adminToken);
      await route(deps, req, res);
    };
    routed().catch((err: unknown) => {
      if (err instanceof TrellisError) {
        if (err.code === 'TRL_API_UNAUTHENTICATED')
          res.setHeader('www-authenticate', 'Bearer realm="trellis"');
        if (err.code === 'TRL_API_UNAUTHENTICATED' || err.code === 'TRL_API_CROSS_ORIGIN')
          deps.log.warn('api request refused', {
            code: err.code,
            method: req.method,
            url: req.url,
            origin: req.headers.origin,
            host: req.headers.host,
            remote: req.socket.remoteAddress,
          });
        return send(res, err.status, err.toJSON());
      }
      deps.log.error('api request failed', { error: String(err), url: req.url });
      send(res, 500, { code: 'TRL_INTERNAL', message: 'internal error; see the control plane log' });
    });
  });
}

/** A snapshot as operators see it: a credential's private key stays between the control plane and its proxy. */
function redactCredentials(snap: ProxySnapshot): ProxySnapshot {
  const gatewayKeys = snap.listeners.some((l) => l.type === 'gateway' && l.tls?.some((t) => t.credentials));
  if (!gatewayKeys && !snap.clusters.some((c) => 'credential' in c.tls && c.tls.credential?.privateKey))
    return snap;
  return {
    ...snap,
    listeners: snap.listeners.map((l) =>
      l.type === 'gateway' && l.tls
        ? {
            ...l,
            tls: l.tls.map((t) =>
              t.credentials
                ? {
                    ...t,
                    credentials: t.credentials.map((c) =>
                      c.privateKey ? { ...c, privateKey: '<redacted>' } : c,
                    ),
                  }
                : t,
            ),
          }
        : l,
    ),
    clusters: snap.clusters.map((c) =>
      'credential' in c.tls && c.tls.credential?.privateKey
        ? { ...c, tls: { ...c.tls, credential: { ...c.tls.credential, privateKey: '<redacted>' } } }
        : c,
    ),
  };
}
