// Connections to external authorizers outside the mesh (a ServiceEntry's endpoints, in plaintext),
// kept as long as the proxy and shared by every snapshot that uses them: keep-alive HTTP/1.1 pools
// and gRPC channels, one per endpoint. Authorizers in the mesh go through the proxy's PeerPool, as
// any other mesh upstream. Those no snapshot asks for any more are closed when a snapshot applies.
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { Endpoint, ProxySnapshot } from '../../../compile/snapshot.ts';
import { H1Pool } from '../../upstream/h1-pool.ts';
import { AuthorizationClient, grpcTarget } from './grpc.ts';

const key = (ep: Endpoint) => `${ep.address}:${ep.port}`;

export class ExtAuthzClients {
  private readonly pools = new Map<string, H1Pool>();
  private readonly channels = new Map<string, grpc.Client>();

  h1(ep: Endpoint): H1Pool {
    const k = key(ep);
    let pool = this.pools.get(k);
    if (!pool) {
      pool = new H1Pool(() => net.connect({ host: ep.address, port: ep.port, noDelay: true }));
      this.pools.set(k, pool);
    }
    return pool;
  }

  grpc(ep: Endpoint): grpc.Client {
    const k = key(ep);
    let client = this.channels.get(k);
    if (!client) {
      client = new AuthorizationClient(grpcTarget(ep), grpc.credentials.createInsecure());
      this.channels.set(k, client);
    }
    return client;
  }

  /** Closes what `snapshot`'s authorizers do not use. */
  retain(snapshot: ProxySnapshot | undefined): void {
    const keep = new Set<string>();
    const clusters = new Map((snapshot?.clusters ?? []).map((c) => [c.name, c]));
    for (const l of snapshot?.listeners ?? []) {
      const ext = l.type === 'outbound' ? undefined : l.authorization?.extAuthz;
      const c = ext && 'cluster' in ext ? clusters.get(ext.cluster) : undefined;
      if (c?.tls.mode === 'DISABLE') for (const ep of c.endpoints) keep.add(key(ep));
    }
    for (const [k, pool] of this.pools)
      if (!keep.has(k)) {
        pool.close();
        this.pools.delete(k);
      }
    for (const [k, client] of this.channels)
      if (!keep.has(k)) {
        client.close();
        this.channels.delete(k);
      }
  }

  close(): void {
    this.retain(undefined);
  }
}
