// What a proxy is told at start (a JSON file): who it is, where its control plane is, which ports
// to use. The local runtime writes it; `trellis proxy --bootstrap` reads it.
import type { ProxyNode } from '../compile/snapshot.ts';
import type { Readiness } from './app-health.ts';
import type { ListenerLimits } from './listener-limits.ts';
import type { CaptureOptions } from './proxy.ts';

export interface ProxyBootstrap {
  node: Omit<ProxyNode, 'healthy'>;
  trustDomain: string;
  controlPlane: string;
  rootCertFile: string;
  tokenFile?: string;
  bindHost: string;
  outboundPort: number;
  inboundPort: number;
  adminPort: number;
  appPorts: Record<string, number>;
  readiness?: Readiness;
  accessLog?: boolean;
  listenerLimits?: Partial<ListenerLimits>;
  capture?: CaptureOptions;
}
