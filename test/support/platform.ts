// What `trellis up`'s supervisor does for a proxy it starts, for tests that start their own: it holds
// the admin credential, registers the instance with the control plane and hands the proxy the
// bootstrap token it gets back.
import { readFileSync } from 'node:fs';
import type { ProxyNode } from '../../src/compile/snapshot.ts';
import type { ControlPlaneInfo } from '../../src/controlplane/control-plane.ts';
import { PortAllocator } from '../../src/platform/ports.ts';

/** The headers an admin's API request carries. */
export function adminHeaders(info: Pick<ControlPlaneInfo, 'adminTokenFile'>): Record<string, string> {
  return {
    authorization: `Bearer ${readFileSync(info.adminTokenFile, 'utf8').trim()}`,
    'content-type': 'application/json',
  };
}

export async function registerInstance(
  info: Pick<ControlPlaneInfo, 'api' | 'adminTokenFile'>,
  node: Omit<ProxyNode, 'healthy'>,
): Promise<string> {
  const res = await fetch(`${info.api}/api/v1/instances`, {
    method: 'POST',
    headers: adminHeaders(info),
    body: JSON.stringify({ node }),
  });
  const body = (await res.json()) as { token?: string };
  if (res.status !== 200 || !body.token)
    throw new Error(`registering ${node.id}: ${res.status} ${JSON.stringify(body)}`);
  return body.token;
}

const ports = new PortAllocator();

/**
 * Registers a proxy the test is about to start, on an inbound port the platform picks (a sidecar's
 * endpoint is the platform's to say); returns that port and the proxy's token.
 */
export async function platformInstance(
  info: Pick<ControlPlaneInfo, 'api' | 'adminTokenFile'>,
  node: Omit<ProxyNode, 'healthy' | 'inboundPort'>,
): Promise<{ token: string; inboundPort: number }> {
  const inboundPort = node.role === 'sidecar' ? await ports.next() : 0;
  const token = await registerInstance(info, {
    ...node,
    inboundPort: node.role === 'sidecar' ? inboundPort : undefined,
  });
  return { token, inboundPort };
}
