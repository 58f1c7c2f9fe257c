// The behaviour every Store backend must have. Each backend's test file calls runStoreSuite.

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { Resource } from '../../src/api/resource.ts';
import type { Op, ResourceKey, Store, WatchEvent } from '../../src/controlplane/store/store.ts';
import { TrellisError } from '../../src/lib/errors.ts';
import type { Logger } from '../../src/lib/log.ts';

/** A logger that keeps records instead of printing them, for tests. */
export function captureLogger(): Logger & { records: { level: string; msg: string; fields?: object }[] } {
  const records: { level: string; msg: string; fields?: object }[] = [];
  const at = (level: string) => (msg: string, fields?: object) => {
    records.push({ level, msg, fields });
  };
  const logger = {
    records,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => logger,
  };
  return logger;
}

const VS = 'networking.istio.io/VirtualService';
const DR = 'networking.istio.io/DestinationRule';

export function vs(name: string, spec: unknown = { hosts: [name] }, namespace = 'default'): Resource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace },
    spec,
  };
}

function dr(name: string, namespace = 'default'): Resource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name, namespace },
    spec: { host: name },
  };
}

function svc(name: string, namespace = 'default'): Resource {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { ports: [{ port: 80 }] },
  };
}

export const vsKey = (name: string, namespace = 'default'): ResourceKey => ({ kind: VS, namespace, name });
const put = (resource: Resource, expectVersion?: string): Op => ({ type: 'put', resource, expectVersion });
const del = (key: ResourceKey, expectVersion?: string): Op => ({ type: 'delete', key, expectVersion });

function isCode(code: string, ...fragments: string[]) {
  return (err: unknown) => {
    assert.ok(err instanceof TrellisError, `expected a TrellisError, got ${err}`);
    assert.equal(err.code, code);
    for (const f of fragments)
      assert.match(err.message, new RegExp(f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
    return true;
  };
}

const names = (rs: Resource[]) => rs.map((r) => `${r.kind}:${r.metadata.namespace}/${r.metadata.name}`);

/** `open` returns a fresh, empty store; the suite closes it after each test. */
export function runStoreSuite(name: string, open: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    const fresh = async () => {
      store = await open();
      return store;
    };
    afterEach(async () => {
      await store?.close();
    });

    it('starts empty at revision 0', async () => {
      const s = await fresh();
      assert.equal(s.revision, 0);
      assert.equal(s.get(vsKey('a')), undefined);
      assert.deepEqual(s.list(), []);
    });

    it('create stamps resourceVersion, uid, creationTimestamp and generation 1', async () => {
      const s = await fresh();
      const input = vs('reviews');
      input.metadata.uid = 'ignored';
      const before = structuredClone(input);
      const res = await s.commit([put(input)]);
      assert.equal(res.revision, 1);
      assert.equal(s.revision, 1);
      assert.deepEqual(input, before, 'the caller’s object is not modified');
      const got = s.get(vsKey('reviews'))!;
      assert.equal(got.metadata.resourceVersion, '1');
      assert.equal(got.metadata.generation, 1);
      assert.match(got.metadata.uid!, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.equal(new Date(got.metadata.creationTimestamp!).toISOString(), got.metadata.creationTimestamp);
      assert.deepEqual(got.spec, { hosts: ['reviews'] });
      assert.equal(res.changes.length, 1);
      assert.equal(res.changes[0].type, 'put');
      assert.deepEqual(res.changes[0].key, vsKey('reviews'));
      assert.deepEqual(res.changes[0].resource, got);
      assert.equal(res.changes[0].previous, undefined);
    });

    it('returns frozen resources that callers cannot mutate', async () => {
      const s = await fresh();
      await s.commit([put(vs('a', { hosts: ['a'] }))]);
      const got = s.get(vsKey('a'))! as Resource<{ hosts: string[] }>;
      assert.throws(() => {
        got.metadata.name = 'b';
      }, TypeError);
      assert.throws(() => got.spec.hosts.push('x'), TypeError);
      assert.throws(() => {
        (s.list()[0].spec as { hosts: string[] }).hosts[0] = 'x';
      }, TypeError);
      assert.deepEqual(s.get(vsKey('a'))!.spec, { hosts: ['a'] });
    });

    it('update keeps uid and creationTimestamp, bumps generation only when spec changes', async () => {
      const s = await fresh();
      await s.commit([put(vs('r', { hosts: ['r'] }))]);
      const v1 = s.get(vsKey('r'))!;
      const res = await s.commit([put(vs('r', { hosts: ['r', 'r2'] }))]);
      const v2 = s.get(vsKey('r'))!;
      assert.equal(res.revision, 2);
      assert.equal(v2.metadata.resourceVersion, '2');
      assert.equal(v2.metadata.generation, 2);
      assert.equal(v2.metadata.uid, v1.metadata.uid);
      assert.equal(v2.metadata.creationTimestamp, v1.metadata.creationTimestamp);
      assert.deepEqual(res.changes[0].previous, v1);
      assert.deepEqual(res.changes[0].resource, v2);

      const labelled = vs('r', { hosts: ['r', 'r2'] });
      labelled.metadata.labels = { app: 'r' };
      await s.commit([put(labelled)]);
      const v3 = s.get(vsKey('r'))!;
      assert.equal(v3.metadata.resourceVersion, '3');
      assert.equal(v3.metadata.generation, 2, 'labels are not spec');
      assert.deepEqual(v3.metadata.labels, { app: 'r' });
    });

    it('keys a resource by group and kind, whatever the served version', async () => {
      const s = await fresh();
      const beta = { ...vs('r'), apiVersion: 'networking.istio.io/v1beta1' };
      await s.commit([put(beta)]);
      const res = await s.commit([put(vs('r'))]);
      assert.equal(res.changes.length, 1, 'a new apiVersion is a change');
      assert.equal(s.list().length, 1);
      const got = s.get(vsKey('r'))!;
      assert.equal(got.apiVersion, 'networking.istio.io/v1');
      assert.equal(got.metadata.generation, 1, 'same spec, same generation');
      await s.commit([put(svc('r'))]);
      assert.equal(s.get({ kind: '/Service', namespace: 'default', name: 'r' })!.kind, 'Service');
      assert.equal(s.list().length, 2);
    });

    it('an identical put is a no-op: no change, no new revision, no event', async () => {
      const s = await fresh();
      const events: WatchEvent[] = [];
      s.watch((e) => events.push(e));
      const r = vs('r');
      r.metadata.labels = { a: '1' };
      await s.commit([put(r)]);
      const stored = s.get(vsKey('r'))!;
      // Store-owned metadata in the input does not make it different.
      const again = structuredClone(r);
      again.metadata.resourceVersion = '99';
      again.metadata.generation = 7;
      const res = await s.commit([put(again)]);
      assert.deepEqual(res, { revision: 1, changes: [] });
      assert.equal(s.revision, 1);
      assert.equal(s.get(vsKey('r')), stored);
      assert.equal(events.length, 1);
      // Mixed with a real change, only the real change is reported.
      const mixed = await s.commit([put(r), put(vs('other'))]);
      assert.equal(mixed.revision, 2);
      assert.deepEqual(
        mixed.changes.map((c) => c.key.name),
        ['other'],
      );
    });

    it('delete removes the resource and reports what it was', async () => {
      const s = await fresh();
      await s.commit([put(vs('a')), put(vs('b'))]);
      const a = s.get(vsKey('a'));
      const res = await s.commit([del(vsKey('a'))]);
      assert.equal(res.revision, 2);
      assert.deepEqual(res.changes, [{ type: 'delete', key: vsKey('a'), previous: a }]);
      assert.equal(s.get(vsKey('a')), undefined);
      assert.deepEqual(names(s.list()), ['VirtualService:default/b']);
      // Re-creating gets a new identity.
      await s.commit([put(vs('a'))]);
      const a2 = s.get(vsKey('a'))!;
      assert.notEqual(a2.metadata.uid, a!.metadata.uid);
      assert.equal(a2.metadata.generation, 1);
    });

    it('deleting a missing resource is TRL_NOT_FOUND and changes nothing', async () => {
      const s = await fresh();
      await s.commit([put(vs('a'))]);
      await assert.rejects(
        s.commit([del(vsKey('nope'))]),
        isCode('TRL_NOT_FOUND', 'VirtualService', 'default/nope'),
      );
      assert.equal(s.revision, 1);
    });

    it('expectVersion "" means create only', async () => {
      const s = await fresh();
      await s.commit([put(vs('a'), '')]);
      const before = s.get(vsKey('a'));
      await assert.rejects(
        s.commit([put(vs('a', { hosts: ['changed'] }), '')]),
        isCode(
          'TRL_CONFLICT',
          'VirtualService.networking.istio.io default/a',
          'not to exist',
          'resourceVersion 1',
        ),
      );
      assert.equal(s.get(vsKey('a')), before);
      assert.equal(s.revision, 1);
    });

    it('expectVersion must match the current resourceVersion', async () => {
      const s = await fresh();
      await s.commit([put(vs('a'))]);
      await s.commit([put(vs('a', { hosts: ['v2'] }))]);
      const current = s.get(vsKey('a'));
      await assert.rejects(
        s.commit([put(vs('a', { hosts: ['stale'] }), '1')]),
        isCode('TRL_CONFLICT', 'default/a', 'expected resourceVersion 1', 'resourceVersion 2'),
      );
      await assert.rejects(s.commit([del(vsKey('a'), '1')]), isCode('TRL_CONFLICT', 'default/a', '1', '2'));
      await assert.rejects(
        s.commit([put(vs('new'), '5')]),
        isCode('TRL_CONFLICT', 'default/new', 'resourceVersion 5', 'does not exist'),
      );
      assert.equal(s.get(vsKey('a')), current);
      assert.equal(s.revision, 2);
      await s.commit([put(vs('a', { hosts: ['v3'] }), '2')]);
      assert.equal(s.get(vsKey('a'))!.metadata.resourceVersion, '3');
      await s.commit([del(vsKey('a'), '3')]);
      assert.equal(s.get(vsKey('a')), undefined);
    });

    it('a commit is atomic: when the 2nd op conflicts, the 1st is not applied', async () => {
      const s = await fresh();
      await s.commit([put(vs('b'))]);
      const events: WatchEvent[] = [];
      s.watch((e) => events.push(e));
      const before = s.list();
      await assert.rejects(
        s.commit([put(vs('a')), put(vs('b', { hosts: ['x'] }), '7')]),
        isCode('TRL_CONFLICT'),
      );
      await assert.rejects(s.commit([del(vsKey('b')), del(vsKey('missing'))]), isCode('TRL_NOT_FOUND'));
      assert.equal(s.revision, 1);
      assert.deepEqual(s.list(), before);
      assert.equal(s.get(vsKey('a')), undefined);
      assert.equal(events.length, 0);
      // The store still works afterwards.
      assert.equal((await s.commit([put(vs('a'))])).revision, 2);
    });

    it('several ops in one commit share one revision; later ops see earlier ones', async () => {
      const s = await fresh();
      const res = await s.commit([
        put(vs('a')),
        put(dr('a')),
        put(vs('a', { hosts: ['two'] })),
        put(vs('gone')),
      ]);
      assert.equal(res.revision, 1);
      assert.deepEqual(
        res.changes.map((c) => [c.type, c.key.kind, c.key.name]),
        [
          ['put', VS, 'a'],
          ['put', DR, 'a'],
          ['put', VS, 'a'],
          ['put', VS, 'gone'],
        ],
      );
      const a = s.get(vsKey('a'))!;
      assert.deepEqual(a.spec, { hosts: ['two'] });
      assert.equal(a.metadata.resourceVersion, '1');
      const res2 = await s.commit([del(vsKey('gone'), '1'), put(vs('gone'), '')]);
      assert.equal(res2.revision, 2);
      assert.equal(s.get(vsKey('gone'))!.metadata.resourceVersion, '2');
      for (const r of s.list()) assert.ok(['1', '2'].includes(r.metadata.resourceVersion!));
    });

    it('watch delivers every commit in order with its changes; unsubscribe stops it', async () => {
      const s = await fresh();
      const events: WatchEvent[] = [];
      const stop = s.watch((e) => events.push(e));
      s.watch(() => {
        throw new Error('a broken listener must not break commits');
      });
      const r1 = await s.commit([put(vs('a')), put(svc('a'))]);
      const r2 = await s.commit([put(vs('a', { hosts: ['b'] }))]);
      const r3 = await s.commit([del(vsKey('a'))]);
      assert.deepEqual(
        events.map((e) => e.revision),
        [1, 2, 3],
      );
      assert.deepEqual(events, [r1, r2, r3]);
      assert.equal(events[1].changes[0].previous?.metadata.resourceVersion, '1');
      assert.equal(events[1].changes[0].resource?.metadata.resourceVersion, '2');
      assert.equal(events[2].changes[0].type, 'delete');
      stop();
      await s.commit([put(vs('z'))]);
      assert.equal(events.length, 3);
    });

    it('a listener that commits does not reorder events for other listeners', async () => {
      const s = await fresh();
      const seen: number[] = [];
      let follow: Promise<unknown> | undefined;
      s.watch((e) => {
        if (e.revision === 1) follow = s.commit([put(vs('follow-up'))]);
      });
      s.watch((e) => seen.push(e.revision));
      await s.commit([put(vs('first'))]);
      await follow;
      assert.deepEqual(seen, [1, 2]);
    });

    it('concurrent commits are serialized: distinct revisions, events in order', async () => {
      const s = await fresh();
      const events: number[] = [];
      s.watch((e) => events.push(e.revision));
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => s.commit([put(vs(`r${i}`), '')])),
      );
      assert.deepEqual(
        results.map((r) => r.revision),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      assert.deepEqual(
        events,
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      // Two racing creates of one name: exactly one wins.
      const race = await Promise.allSettled([s.commit([put(vs('x'), '')]), s.commit([put(vs('x'), '')])]);
      assert.deepEqual(
        race.map((r) => r.status),
        ['fulfilled', 'rejected'],
      );
      assert.equal(s.revision, 21);
    });

    it('list sorts by kind, namespace, name and filters by kind and namespace', async () => {
      const s = await fresh();
      await s.commit([
        put(vs('b', undefined, 'prod')),
        put(svc('z')),
        put(vs('a', undefined, 'prod')),
        put(dr('m')),
        put(vs('c')),
        put(svc('a', 'prod')),
        put(vs('a-b')),
        put(vs('a')),
      ]);
      assert.deepEqual(names(s.list()), [
        'Service:default/z',
        'Service:prod/a',
        'DestinationRule:default/m',
        'VirtualService:default/a',
        'VirtualService:default/a-b',
        'VirtualService:default/c',
        'VirtualService:prod/a',
        'VirtualService:prod/b',
      ]);
      assert.deepEqual(names(s.list({ kind: VS, namespace: 'prod' })), [
        'VirtualService:prod/a',
        'VirtualService:prod/b',
      ]);
      assert.deepEqual(names(s.list({ namespace: 'prod' })), [
        'Service:prod/a',
        'VirtualService:prod/a',
        'VirtualService:prod/b',
      ]);
      assert.deepEqual(names(s.list({ kind: '/Service' })), ['Service:default/z', 'Service:prod/a']);
      assert.deepEqual(s.list({ kind: 'nope/Nothing' }), []);
    });

    it('rejects a resource without a name or namespace', async () => {
      const s = await fresh();
      await assert.rejects(s.commit([put(vs(''))]), isCode('TRL_INVALID_ARGUMENT', 'metadata.name'));
      await assert.rejects(
        s.commit([put(vs('a', {}, ''))]),
        isCode('TRL_INVALID_ARGUMENT', 'metadata.namespace'),
      );
      assert.equal(s.revision, 0);
    });

    it('an empty commit returns the current revision', async () => {
      const s = await fresh();
      assert.deepEqual(await s.commit([]), { revision: 0, changes: [] });
    });
  });
}
