// gRPC channels to external authorizers outside the mesh (a ServiceEntry's endpoints, in plaintext),
// kept as long as the proxy and shared by every snapshot that uses them, one per endpoint. HTTP
// authorizers go through the proxy's pools as any other upstream: PeerPool in the mesh, ExternalPool
// outside it. Channels no snapshot asks for any more are closed when a snapshot applies.
import * as grpc from '@grpc/grpc-js';
import type { Endpoint, ProxySnapshot } from '../../../compile/snapshot.ts';
import { AuthorizationClient, grpcTarget } from './grpc.ts';

const key = (ep: Endpoint) => `${ep.address}:${ep.port}`;

export class ExtAuthzClients {
  private readonly channels = new Map<string, grpc.Client>();

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
      const c = ext && 'cluster' in ext && ext.protocol === 'GRPC' ? clusters.get(ext.cluster) : undefined;
      if (c?.tls.mode === 'DISABLE') for (const ep of c.endpoints) keep.add(key(ep));
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
