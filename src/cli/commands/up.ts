import { formatIssue, TrellisError } from '../../lib/errors.ts';
import { createLogger } from '../../lib/log.ts';
import { type RunningMesh, startMesh } from '../../platform/local-runtime.ts';

export const help = `Run a whole mesh locally: control plane, every workload with its sidecar, gateways.

Usage: trellis up <mesh file | directory with mesh.yaml> [flags]

Flags:
  --state-dir <dir>          state directory (default .trellis, or $TRELLIS_STATE_DIR)
  --gateway-port <port>      host port of the ingress gateway's first port (0 = any free port)
  --api-port <port>          control plane API port (default 15014; 0 = any)
  --xds-port <port>          control plane port for proxies (default 15012; 0 = any)
  --workload-cert-ttl <dur>  lifetime of workload certificates (default 24h)
  --access-log               log every request in the proxy logs

Examples:
  trellis up samples/bookinfo
  trellis up samples/bookinfo --gateway-port 9090

Logs of every process are in <state-dir>/logs. Ctrl-C stops everything.
`;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  return args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
}

export async function run(args: string[]): Promise<number> {
  const source = args.find(
    (a, i) =>
      !a.startsWith('-') &&
      !args[i - 1]?.match(/^--(state-dir|gateway-port|api-port|xds-port|workload-cert-ttl)$/),
  );
  if (!source) {
    process.stderr.write(`error: a mesh file or directory is required\n\n${help}`);
    return 64;
  }
  const log = createLogger({ component: 'up' });
  const gp = flag(args, '--gateway-port');
  const stateDir = flag(args, '--state-dir') ?? process.env.TRELLIS_STATE_DIR ?? '.trellis';
  let mesh: RunningMesh | undefined;
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  try {
    mesh = await startMesh({
      source,
      stateDir,
      gatewayPort: gp === undefined ? undefined : Number(gp),
      apiPort: Number(flag(args, '--api-port') ?? 15014),
      xdsPort: Number(flag(args, '--xds-port') ?? 15012),
      workloadCertTtl: flag(args, '--workload-cert-ttl'),
      accessLog: args.includes('--access-log'),
      log,
    });
  } catch (err) {
    await mesh?.stop();
    if (err instanceof TrellisError) {
      process.stderr.write(
        `error: ${err.message}\n${err.issues.map((i) => `  ${formatIssue(i)}\n`).join('')}`,
      );
      return err.code === 'TRL_VALIDATION' ? 65 : 1;
    }
    throw err;
  }
  const { info } = mesh;
  const lines = [
    `Trellis mesh is up (${info.instances.length} proxies). Logs: ${stateDir}/logs`,
    '',
    ...info.instances.map(
      (i) =>
        `  ${i.role === 'gateway' ? 'gateway' : 'sidecar'}  ${i.id.padEnd(36)} admin http://127.0.0.1:${i.adminPort}/stats/prometheus`,
    ),
    '',
    `  control plane API  ${info.controlPlane.api}`,
    ...info.gateways.map(
      (g) => `  ingress gateway    ${g}${source.includes('bookinfo') ? '/productpage' : ''}`,
    ),
    '',
    'Try: trellis proxy-status · trellis apply -f samples/bookinfo/networking/virtual-service-all-v1.yaml · Ctrl-C to stop',
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  await stopped;
  process.stdout.write('stopping...\n');
  await mesh.stop();
  return 0;
}
