// A cluster's TCP settings on a new upstream socket, the same for mesh peers and for upstreams
// outside the mesh.
import type net from 'node:net';
import type { ConnectionPool } from '../../compile/snapshot.ts';

/** Envoy's default connect timeout. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** `ready` ends the connect timeout: `secureConnect` for TLS, where the handshake is part of connecting. */
export function tuneUpstreamSocket(
  socket: net.Socket,
  pool: ConnectionPool | undefined,
  ready: 'connect' | 'secureConnect',
  defaultTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS,
): void {
  // Small writes (request heads, HEADERS and WINDOW_UPDATE frames) must not wait on Nagle for the
  // peer's delayed ACK.
  socket.setNoDelay(true);
  const keepalive = pool?.tcpKeepalive;
  if (keepalive) socket.setKeepAlive(true, keepalive.timeMs ?? 0);
  const timeout = pool?.connectTimeoutMs ?? defaultTimeoutMs;
  socket.setTimeout(timeout, () => socket.destroy(new Error(`connect timeout after ${timeout}ms`)));
  socket.once(ready, () => socket.setTimeout(0));
}
