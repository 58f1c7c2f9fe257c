import { startControlPlane } from '../../controlplane/control-plane.ts';
import { createLogger } from '../../lib/log.ts';
import { durationFlag, maxPositionals, parseArgs, portFlag } from '../args.ts';
import { packageVersion } from '../version-info.ts';

export const help = `Run the Trellis control plane (store, CA, registry, push, API).

Usage: trellis control-plane [flags]

Flags:
  --state-dir <dir>          state directory (default .trellis, or $TRELLIS_STATE_DIR)
  --host <addr>              address to listen on (default 127.0.0.1)
  --api-port <port>          HTTP API for the CLI (default 15014; 0 = any)
  --xds-port <port>          mTLS port for proxies: certificates and push (default 15012; 0 = any)
  --trust-domain <domain>    SPIFFE trust domain (default cluster.local)
  --workload-cert-ttl <dur>  lifetime of workload certificates (default 24h)
  --ca-dir <dir>             plugged-in CA in Istio's cacerts layout (ca-cert.pem, ca-key.pem,
                             root-cert.pem, cert-chain.pem); default: a generated root in the state dir
  --ca-rotation-soak <dur>   the least time \`trellis ca rotate\` spends in each phase, for clients outside
                             the mesh that read trust-bundle.pem themselves (default 0s)
  --jwks-refresh-interval <dur>
                             how often RequestAuthentication key sets (jwksUri) are fetched again
                             (default $PILOT_JWT_PUB_KEY_REFRESH_INTERVAL, else 20m, as in Istio)
`;

const FLAGS = {
  'state-dir': { type: 'string' },
  host: { type: 'string' },
  'api-port': { type: 'string' },
  'xds-port': { type: 'string' },
  'trust-domain': { type: 'string' },
  'workload-cert-ttl': { type: 'string' },
  'ca-dir': { type: 'string' },
  'ca-rotation-soak': { type: 'string' },
  'jwks-refresh-interval': { type: 'string' },
} as const;

export async function run(args: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(args, FLAGS, 'control-plane');
  maxPositionals(positionals, 0, 'control-plane');
  const cp = await startControlPlane({
    stateDir: flags['state-dir'] ?? process.env.TRELLIS_STATE_DIR ?? '.trellis',
    host: flags.host ?? '127.0.0.1',
    apiPort: portFlag(flags['api-port'], 15014, 'api-port', 'control-plane'),
    xdsPort: portFlag(flags['xds-port'], 15012, 'xds-port', 'control-plane'),
    trustDomain: flags['trust-domain'] ?? 'cluster.local',
    workloadCertTtlMs: durationFlag(flags['workload-cert-ttl'], '24h', 'workload-cert-ttl', 'control-plane'),
    pluggedCaDir: flags['ca-dir'],
    caRotationSoakMs: durationFlag(flags['ca-rotation-soak'], '0s', 'ca-rotation-soak', 'control-plane'),
    jwksRefreshMs: durationFlag(
      flags['jwks-refresh-interval'] ?? process.env.PILOT_JWT_PUB_KEY_REFRESH_INTERVAL,
      '20m',
      'jwks-refresh-interval',
      'control-plane',
    ),
    version: packageVersion(),
    log: createLogger({ component: 'control-plane' }),
  });
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await cp.close();
  return 0;
}
