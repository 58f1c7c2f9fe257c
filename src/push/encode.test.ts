// The push encoding of what proxies share: the shared part of a view is encoded once, and the
// message parses to exactly the snapshot compile assembled.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gatewayNode, input, mesh, node, proxies } from '../../test/support/shared-views-mesh.ts';
import { assembleSnapshot, compileParts } from '../compile/compile.ts';
import { buildMeshIndex } from '../compile/mesh-index.ts';
import { encodeSnapshotMessage, sharedConfigJson } from './encode.ts';

const bytes = (chunks: Uint8Array[]) => Buffer.concat(chunks).toString('utf8');

describe('push: encoding', () => {
  test('the shared JSON is JSON.stringify of the shared values', () => {
    const index = buildMeshIndex(input());
    for (const p of [proxies[0], proxies[4], gatewayNode]) {
      const { shared } = compileParts(index, p);
      const json = sharedConfigJson(shared);
      assert.equal(json.routeTables, JSON.stringify(shared.routeTables));
      assert.equal(json.clusters, JSON.stringify(shared.clusters));
    }
  });

  test('a snapshot message parses to the assembled snapshot; proxies of a view send the same shared bytes', () => {
    const index = buildMeshIndex(input());
    for (const p of proxies) {
      const parts = compileParts(index, p);
      const text = bytes(encodeSnapshotMessage(parts));
      assert.ok(text.endsWith('}\n') && text.indexOf('\n') === text.length - 1, 'one NDJSON line');
      const expected = JSON.parse(JSON.stringify({ type: 'snapshot', snapshot: assembleSnapshot(parts) }));
      assert.deepEqual(JSON.parse(text), expected);
    }
    const [x, y] = [
      encodeSnapshotMessage(compileParts(index, proxies[0])),
      encodeSnapshotMessage(compileParts(index, proxies[1])),
    ];
    assert.equal(x[1], y[1], 'the same byte array, not a copy');
    assert.notDeepEqual(x[0], y[0]);
  });

  test('a snapshot without shared clusters still encodes valid JSON', () => {
    // No services: the sidecar has only its inbound cluster, the shared cluster list is empty.
    const lonely = node('z', 'one', 0);
    const parts = compileParts(
      buildMeshIndex({ revision: 1, resources: [], proxies: [lonely], mesh }),
      lonely,
    );
    assert.equal(parts.shared.clusters.length, 0);
    const expected = JSON.parse(JSON.stringify(assembleSnapshot(parts)));
    assert.deepEqual(JSON.parse(bytes(encodeSnapshotMessage(parts))).snapshot, expected);
  });
});
