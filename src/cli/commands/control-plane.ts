import { parseDuration } from '../../api/schema.ts';
import { startControlPlane } from '../../controlplane/control-plane.ts';
import { formatIssue, TrellisError } from '../../lib/errors.ts';
import { createLogger } from '../../lib/log.ts';
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
`;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  const eq = args.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

function durationFlag(args: string[], name: string, fallback: string): number {
  const v = flag(args, name) ?? fallback;
  const ms = parseDuration(v);
  if (ms === undefined)
    throw new TrellisError('TRL_INVALID_ARGUMENT', `${name}: "${v}" is not a duration (e.g. 24h, 30s)`);
  return ms;
}

export async function run(args: string[]): Promise<number> {
  const log = createLogger({ component: 'control-plane' });
  try {
    const cp = await startControlPlane({
      stateDir: flag(args, '--state-dir') ?? process.env.TRELLIS_STATE_DIR ?? '.trellis',
      host: flag(args, '--host') ?? '127.0.0.1',
      apiPort: Number(flag(args, '--api-port') ?? 15014),
      xdsPort: Number(flag(args, '--xds-port') ?? 15012),
      trustDomain: flag(args, '--trust-domain') ?? 'cluster.local',
      workloadCertTtlMs: durationFlag(args, '--workload-cert-ttl', '24h'),
      pluggedCaDir: flag(args, '--ca-dir'),
      version: packageVersion(),
      log,
    });
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await cp.close();
    return 0;
  } catch (err) {
    if (err instanceof TrellisError) {
      process.stderr.write(
        `error: ${err.message}\n${err.issues.map((i) => `  ${formatIssue(i)}\n`).join('')}`,
      );
      return 1;
    }
    throw err;
  }
}
