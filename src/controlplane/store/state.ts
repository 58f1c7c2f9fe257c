// The in-memory state every backend keeps: resources by key plus the revision, and the one
// implementation of commit semantics (metadata stamping, optimistic concurrency, no-op detection),
// so that backends differ only in how they make a commit durable.

import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { Resource } from '../../api/resource.ts';
import { errorMessage, TrellisError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { createLogger } from '../../lib/log.ts';
import type { Change, ListFilter, Op, ResourceKey, WatchEvent } from './store.ts';
import { formatKey, keyOf } from './store.ts';

// NUL sorts below every character that can appear in a kind, namespace or name, so sorting these ids as
// strings sorts by (kind, namespace, name).
function idOf(key: ResourceKey): string {
  return `${key.kind}\0${key.namespace}\0${key.name}`;
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

// A JSON round trip: stored resources are plain JSON data, so memory and disk backends agree exactly
// (e.g. `labels: undefined` disappears in both) and callers keep no reference into the store.
function jsonClone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function checkResource(r: Resource): void {
  const m = r?.metadata;
  const bad =
    typeof r?.apiVersion !== 'string' || !r.apiVersion
      ? 'apiVersion'
      : typeof r.kind !== 'string' || !r.kind
        ? 'kind'
        : typeof m?.name !== 'string' || !m.name
          ? 'metadata.name'
          : typeof m.namespace !== 'string' || !m.namespace
            ? 'metadata.namespace'
            : '';
  if (bad)
    throw new TrellisError('TRL_INVALID_ARGUMENT', `store: put needs a resource with a non-empty ${bad}`);
}

function sameContent(a: Resource, b: Resource): boolean {
  return (
    a.apiVersion === b.apiVersion &&
    isDeepStrictEqual(a.spec, b.spec) &&
    isDeepStrictEqual(a.metadata.labels ?? {}, b.metadata.labels ?? {}) &&
    isDeepStrictEqual(a.metadata.annotations ?? {}, b.metadata.annotations ?? {})
  );
}

function checkExpected(key: ResourceKey, expect: string | undefined, current: Resource | undefined): void {
  if (expect === undefined) return;
  const have = current?.metadata.resourceVersion;
  if (expect === '' ? current === undefined : have === expect) return;
  const wanted = expect === '' ? 'it not to exist' : `resourceVersion ${expect}`;
  const found = current ? `it is at resourceVersion ${have}` : 'it does not exist';
  throw new TrellisError(
    'TRL_CONFLICT',
    `conflict on ${formatKey(key)}: expected ${wanted}, but ${found}; read it again and retry`,
  );
}

export class ResourceState {
  revision = 0;
  #items = new Map<string, Resource>();
  #sorted: Resource[] | undefined;

  get size(): number {
    return this.#items.size;
  }

  get(key: ResourceKey): Resource | undefined {
    return this.#items.get(idOf(key));
  }

  list(filter: ListFilter = {}): Resource[] {
    if (!this.#sorted) {
      const ids = [...this.#items.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      this.#sorted = ids.map((id) => this.#items.get(id)!);
    }
    const { kind, namespace } = filter;
    if (kind === undefined && namespace === undefined) return [...this.#sorted];
    return this.#sorted.filter((r) => {
      const k = keyOf(r);
      return (
        (kind === undefined || k.kind === kind) && (namespace === undefined || k.namespace === namespace)
      );
    });
  }

  /**
   * Works out what `ops` would change at the next revision without touching the state; throws (and so
   * applies nothing) if any op fails. Later ops see the effect of earlier ones in the same commit.
   */
  plan(ops: Op[], now = new Date()): Change[] {
    const version = String(this.revision + 1);
    const pending = new Map<string, Resource | null>(); // null = deleted in this commit
    const current = (id: string) => (pending.has(id) ? (pending.get(id) ?? undefined) : this.#items.get(id));
    const changes: Change[] = [];
    for (const op of ops) {
      if (op.type === 'put') {
        checkResource(op.resource);
        const input = jsonClone(op.resource);
        const key = keyOf(input);
        const id = idOf(key);
        const previous = current(id);
        checkExpected(key, op.expectVersion, previous);
        if (previous && sameContent(previous, input)) continue;
        const generation = previous?.metadata.generation ?? 0;
        input.metadata = {
          ...input.metadata,
          resourceVersion: version,
          uid: previous?.metadata.uid ?? randomUUID(),
          creationTimestamp: previous?.metadata.creationTimestamp ?? now.toISOString(),
          generation: previous && isDeepStrictEqual(previous.spec, input.spec) ? generation : generation + 1,
        };
        const resource = deepFreeze(input);
        pending.set(id, resource);
        changes.push(
          deepFreeze(previous ? { type: 'put', key, resource, previous } : { type: 'put', key, resource }),
        );
      } else if (op.type === 'delete') {
        const key: ResourceKey = { kind: op.key.kind, namespace: op.key.namespace, name: op.key.name };
        const id = idOf(key);
        const previous = current(id);
        if (!previous)
          throw new TrellisError('TRL_NOT_FOUND', `cannot delete ${formatKey(key)}: it does not exist`);
        checkExpected(key, op.expectVersion, previous);
        pending.set(id, null);
        changes.push(deepFreeze({ type: 'delete', key, previous }));
      } else {
        throw new TrellisError(
          'TRL_INVALID_ARGUMENT',
          `store: unknown op type ${(op as { type: unknown }).type}`,
        );
      }
    }
    return changes;
  }

  /** Applies planned (or replayed) changes as `revision`. Change resources must already be frozen. */
  apply(revision: number, changes: readonly Change[]): void {
    for (const c of changes) {
      if (c.type === 'put' && c.resource) this.#items.set(idOf(c.key), c.resource);
      else this.#items.delete(idOf(c.key));
    }
    this.revision = revision;
    this.#sorted = undefined;
  }
}

/** Watch listeners. A throwing listener is logged and skipped: it must not fail a durable commit. */
export class Watchers {
  #listeners = new Set<(e: WatchEvent) => void>();
  #logger: Logger;

  constructor(logger: Logger = createLogger({ component: 'store' })) {
    this.#logger = logger;
  }

  add(listener: (e: WatchEvent) => void): () => void {
    // Wrap so that the same function can be registered twice and unsubscribed independently.
    const entry = (e: WatchEvent) => listener(e);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  emit(event: WatchEvent): void {
    for (const l of [...this.#listeners]) {
      try {
        l(event);
      } catch (err) {
        this.#logger.error('store watch listener failed', {
          revision: event.revision,
          error: errorMessage(err),
        });
      }
    }
  }
}

/**
 * Runs tasks one at a time in call order; a failed task does not stop the next. Commits go through it
 * so that they never interleave, and so that a watch listener that commits does not run its commit in
 * the middle of delivering the current event (other listeners would see revisions out of order).
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => T | Promise<T>): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.catch(() => {});
    return result;
  }

  /** Resolves once every task queued so far has finished. */
  async idle(): Promise<void> {
    await this.#tail;
  }
}
