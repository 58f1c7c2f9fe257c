import { readFile } from 'node:fs/promises';
import type { ProxyBootstrap } from '../../dataplane/bootstrap.ts';
import { startProxy } from '../../dataplane/proxy.ts';
import { createLogger } from '../../lib/log.ts';
import { maxPositionals, parseArgs, UsageError } from '../args.ts';

export const help = `Run a Trellis proxy (sidecar or gateway). Normally started by \`trellis up\`.

Usage: trellis proxy --bootstrap <file.json>

The bootstrap file says who the proxy is and where its control plane is:
  {
    "node": {"id", "role": "sidecar"|"gateway", "workload", "namespace", "serviceAccount",
             "labels", "address", "ports": [{"name","port","protocol"}], "gatewayPorts": {"80": 8080}},
    "trustDomain": "cluster.local",
    "controlPlane": "https://127.0.0.1:15012", "rootCertFile": "...", "tokenFile": "...",
    "bindHost": "127.0.0.1", "outboundPort": 0, "inboundPort": 0, "adminPort": 0,
    "appPorts": {"9080": 34567},
    "readiness": {"port": 34567, "path": "/health", "periodMs": 1000, "timeoutMs": 1000,
                  "initialDelayMs": 0, "failureThreshold": 3},
    "accessLog": false,
    "listenerLimits": {"maxConnections": 4096, "sniffTimeoutMs": 10000, "handshakeTimeoutMs": 10000,
                       "delayedCloseMs": 1000, "maxConcurrentStreams": 100}
  }
listenerLimits apply to each listener; the values shown are the defaults.
`;

export async function run(args: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(args, { bootstrap: { type: 'string' } } as const, 'proxy');
  maxPositionals(positionals, 0, 'proxy');
  if (!flags.bootstrap) throw new UsageError('--bootstrap <file> is required', 'proxy');
  const b = JSON.parse(await readFile(flags.bootstrap, 'utf8')) as ProxyBootstrap;
  const log = createLogger({ component: 'proxy', proxy: b.node.id });
  const proxy = await startProxy({
    node: { ...b.node, healthy: false },
    trustDomain: b.trustDomain,
    controlPlane: b.controlPlane,
    rootCertPem: await readFile(b.rootCertFile, 'utf8'),
    token: b.tokenFile ? (await readFile(b.tokenFile, 'utf8')).trim() : undefined,
    bindHost: b.bindHost,
    outboundPort: b.outboundPort,
    inboundPort: b.inboundPort,
    adminPort: b.adminPort,
    appPorts: new Map(Object.entries(b.appPorts).map(([k, v]) => [Number(k), v])),
    readiness: b.readiness,
    accessLog: b.accessLog ?? false,
    listenerLimits: b.listenerLimits,
    capture: b.capture,
    log,
  });
  log.info('proxy started', { ports: proxy.ports });
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await proxy.close();
  return 0;
}
