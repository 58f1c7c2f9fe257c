// What `trellis up`'s supervisor does for a proxy it starts, for tests that start their own: it holds
// the admin credential, registers the instance with the control plane and hands the proxy the
// bootstrap token it gets back.
import { readFileSync } from 'node:fs';
import type { ProxyNode } from '../../src/compile/snapshot.ts';
import type { ControlPlaneInfo } from '../../src/controlplane/control-plane.ts';
import type { ListenerLimits } from '../../src/dataplane/listener-limits.ts';
import { type RunningProxy, startProxy } from '../../src/dataplane/proxy.ts';
import type { Logger } from '../../src/lib/log.ts';
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

/**
 * A proxy as `trellis up` starts one: registered with the platform first, bound to 127.0.0.1, its
 * app (if any) on workload port 8080 with a fast readiness probe.
 */
export async function meshProxy(
  info: Pick<ControlPlaneInfo, 'api' | 'adminTokenFile' | 'xds' | 'rootCert'>,
  node: Omit<ProxyNode, 'healthy' | 'address' | 'inboundPort'>,
  opts: { appPort?: number; log: Logger; listenerLimits?: Partial<ListenerLimits>; accessLog?: boolean },
): Promise<RunningProxy> {
  const registered = { ...node, address: '127.0.0.1' };
  const { token, inboundPort } = await platformInstance(info, registered);
  const { appPort } = opts;
  return startProxy({
    node: { ...registered, healthy: false },
    trustDomain: 'cluster.local',
    controlPlane: info.xds,
    rootCertPem: readFileSync(info.rootCert, 'utf8'),
    token,
    bindHost: '127.0.0.1',
    outboundPort: 0,
    inboundPort,
    adminPort: 0,
    appPorts: new Map(appPort ? [[8080, appPort]] : []),
    readiness: appPort
      ? { port: appPort, periodMs: 200, timeoutMs: 1000, initialDelayMs: 0, failureThreshold: 1 }
      : undefined,
    accessLog: opts.accessLog ?? false,
    ...(opts.listenerLimits && { listenerLimits: opts.listenerLimits }),
    log: opts.log,
  });
}
