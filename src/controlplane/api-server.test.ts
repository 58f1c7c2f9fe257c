import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SILENT } from '../lib/log.ts';
import { createApiServer } from './api-server.ts';
import { PushServer } from './push/push.ts';
import { PlatformInstances } from './registry/instances.ts';
import { Registry } from './registry/registry.ts';
import { MemoryStore } from './store/memory.ts';

const store = new MemoryStore();
const registry = new Registry({ log: SILENT });
const push = new PushServer({ store, registry, mesh: { trustDomain: 'cluster.local' }, log: SILENT });
const adminToken = 'test-admin-credential-0123456789';
const server = createApiServer({
  store,
  push,
  registry,
  instances: await PlatformInstances.open(),
  adminToken,
  version: 'test',
  log: SILENT,
});
let base = '';

function vs(name: string, subset: string, extra = ''): string {
  return `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: ${name}\n${extra}spec:\n  hosts: [${name}]\n  http:\n  - route: [{destination: {host: ${name}, subset: ${subset}}}]\n`;
}

async function call(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('HTTP API', () => {
  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    push.close();
    server.close();
  });

  test('apply reports created, unchanged and configured; dry run changes nothing', async () => {
    const dry = await call('POST', '/api/v1/apply', {
      sources: [{ file: 'a.yaml', text: vs('reviews', 'v1') }],
      dryRun: true,
    });
    assert.equal(dry.status, 200);
    assert.equal(store.revision, 0);
    const first = await call('POST', '/api/v1/apply', {
      sources: [{ file: 'a.yaml', text: vs('reviews', 'v1') }],
    });
    assert.deepEqual(first.json.results, [{ resource: 'VirtualService default/reviews', action: 'created' }]);
    const again = await call('POST', '/api/v1/apply', {
      sources: [{ file: 'a.yaml', text: vs('reviews', 'v1') }],
    });
    assert.deepEqual(again.json.results, [
      { resource: 'VirtualService default/reviews', action: 'unchanged' },
    ]);
    const other = await call('POST', '/api/v1/apply', {
      sources: [
        {
          file: 'a.yaml',
          text: vs('reviews', 'v1').replace('networking.istio.io/v1', 'networking.istio.io/v1beta1'),
        },
      ],
    });
    assert.deepEqual(
      other.json.results,
      [{ resource: 'VirtualService default/reviews', action: 'configured' }],
      'another served version is a change',
    );
  });

  test('a stale resourceVersion is a conflict and nothing is applied', async () => {
    const cur = await call('GET', '/api/v1/resources/vs/default/reviews');
    const version = (cur.json.metadata as { resourceVersion: string }).resourceVersion;
    const stale = `  resourceVersion: "${Number(version) - 1}"\n`;
    const before = store.revision;
    const r = await call('POST', '/api/v1/apply', {
      sources: [{ file: 'a.yaml', text: vs('reviews', 'v3', stale) + '---\n' + vs('ratings', 'v1') }],
    });
    assert.equal(r.status, 409);
    assert.equal(r.json.code, 'TRL_CONFLICT');
    assert.equal(store.revision, before);
    assert.equal(
      (await call('GET', '/api/v1/resources/vs/default/ratings')).status,
      404,
      'the other document was not applied either',
    );
    const fresh = await call('POST', '/api/v1/apply', {
      sources: [{ file: 'a.yaml', text: vs('reviews', 'v3', `  resourceVersion: "${version}"\n`) }],
    });
    assert.equal(fresh.status, 200);
  });

  test('invalid input is a 400 with every issue, and nothing is applied', async () => {
    const before = store.revision;
    const r = await call('POST', '/api/v1/apply', {
      sources: [
        {
          file: 'bad.yaml',
          text: vs('ratings', 'v1') + '---\n' + vs('details', 'v1').replace('hosts', 'hostz'),
        },
      ],
    });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 'TRL_VALIDATION');
    const issues = r.json.issues as { file: string; line: number; path: string; message: string }[];
    assert.equal(issues[0].file, 'bad.yaml');
    assert.equal(issues[0].path, 'spec.hostz');
    assert.equal(issues[0].line, 15);
    assert.match(issues[0].message, /did you mean "hosts"/);
    assert.equal(store.revision, before);
  });

  test('deleting several resources is one commit: if one is missing, none is deleted', async () => {
    await call('POST', '/api/v1/apply', { sources: [{ text: vs('ratings', 'v1') }] });
    const missing = await call('POST', '/api/v1/delete', {
      refs: [
        { kind: 'vs', name: 'ratings' },
        { kind: 'vs', name: 'nope' },
      ],
    });
    assert.equal(missing.status, 404);
    assert.equal((await call('GET', '/api/v1/resources/vs/default/ratings')).status, 200);
    const ok = await call('POST', '/api/v1/delete', {
      refs: [
        { kind: 'vs', name: 'ratings' },
        { kind: 'virtualservice', namespace: 'default', name: 'reviews' },
      ],
    });
    assert.equal(ok.status, 200);
    assert.deepEqual((await call('GET', '/api/v1/resources/vs/default')).json.items, []);
  });

  test('errors are JSON with a stable code', async () => {
    const r = await call('GET', '/api/v1/resources/nosuchkind');
    assert.equal(r.status, 404);
    assert.equal(r.json.code, 'TRL_NOT_FOUND');
    assert.match(String(r.json.message), /unknown kind "nosuchkind"/);
  });
});
