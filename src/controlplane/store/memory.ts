// A store that lives only in memory: for tests and for running without a state directory.

import type { Resource } from '../../api/resource.ts';
import { TrellisError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { ResourceState, SerialQueue, Watchers } from './state.ts';
import type { Change, CommitResult, ListFilter, Op, ResourceKey, Store, WatchEvent } from './store.ts';

export class MemoryStore implements Store {
  #state = new ResourceState();
  #watchers: Watchers;
  #queue = new SerialQueue();
  #closed = false;

  constructor(opts: { logger?: Logger } = {}) {
    this.#watchers = new Watchers(opts.logger);
  }

  get revision(): number {
    return this.#state.revision;
  }

  get(key: ResourceKey): Resource | undefined {
    return this.#state.get(key);
  }

  list(filter?: ListFilter): Resource[] {
    return this.#state.list(filter);
  }

  commit(ops: Op[]): Promise<CommitResult> {
    if (this.#closed) return Promise.reject(new TrellisError('TRL_STORE_CLOSED', 'store is closed'));
    return this.#queue.run(() => this.#commit(ops));
  }

  #commit(ops: Op[]): CommitResult {
    const changes = this.#state.plan(ops);
    if (changes.length === 0) return { revision: this.#state.revision, changes: [] };
    const revision = this.#state.revision + 1;
    this.#state.apply(revision, changes);
    const event = Object.freeze({ revision, changes: Object.freeze(changes) as Change[] });
    this.#watchers.emit(event);
    return event;
  }

  watch(listener: (e: WatchEvent) => void): () => void {
    return this.#watchers.add(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue.idle();
  }
}
