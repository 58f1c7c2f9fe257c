import { createLogger } from '../../lib/log.ts';
import { CAPTURE_MODES, type CaptureMode } from '../../platform/capture-network.ts';
import { startMesh } from '../../platform/local-runtime.ts';
import { durationFlag, maxPositionals, parseArgs, portFlag, UsageError } from '../args.ts';

export const help = `Run a whole mesh locally: control plane, every workload with its sidecar, gateways.

Usage: trellis up <mesh file | directory with mesh.yaml> [flags]

Flags:
  --state-dir <dir>          state directory (default .trellis, or $TRELLIS_STATE_DIR)
  --gateway-port <port>      host port of the ingress gateway's first port (0: every gateway port any free one)
  --api-port <port>          control plane API port (default 15014; 0 = any)
  --xds-port <port>          control plane port for proxies (default 15012; 0 = any)
  --workload-cert-ttl <dur>  lifetime of workload certificates (default 24h)
  --ca-dir <dir>             plugged-in CA in Istio's cacerts layout (default: a root generated in the state dir)
  --access-log               log every request in the proxy logs
  --capture <mode>           how apps reach their sidecars: netns (transparent capture, needs root,
                             ip and nft), explicit (HTTP_PROXY) or auto (netns where it works; default)

Examples:
  trellis up samples/bookinfo
  trellis up samples/bookinfo --gateway-port 9090

Logs of every process are in <state-dir>/logs. Ctrl-C stops everything.
`;

const FLAGS = {
  'state-dir': { type: 'string' },
  'gateway-port': { type: 'string' },
  'api-port': { type: 'string' },
  'xds-port': { type: 'string' },
  'workload-cert-ttl': { type: 'string' },
  'ca-dir': { type: 'string' },
  'access-log': { type: 'boolean' },
  capture: { type: 'string' },
} as const;

export async function run(args: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(args, FLAGS, 'up');
  maxPositionals(positionals, 1, 'up');
  const source = positionals[0];
  if (!source)
    throw new UsageError('a mesh file or directory is required, e.g. trellis up samples/bookinfo', 'up');
  const gatewayPort =
    flags['gateway-port'] === undefined
      ? undefined
      : portFlag(flags['gateway-port'], 0, 'gateway-port', 'up');
  const apiPort = portFlag(flags['api-port'], 15014, 'api-port', 'up');
  const xdsPort = portFlag(flags['xds-port'], 15012, 'xds-port', 'up');
  if (flags['workload-cert-ttl'] !== undefined)
    durationFlag(flags['workload-cert-ttl'], '24h', 'workload-cert-ttl', 'up');
  const capture = (flags.capture ?? process.env.TRELLIS_CAPTURE ?? 'auto') as CaptureMode;
  if (!CAPTURE_MODES.includes(capture))
    throw new UsageError(
      `--capture must be one of ${CAPTURE_MODES.join(', ')}, not ${JSON.stringify(capture)}`,
      'up',
    );
  const stateDir = flags['state-dir'] ?? process.env.TRELLIS_STATE_DIR ?? '.trellis';
  const log = createLogger({ component: 'up' });
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  const mesh = await startMesh({
    source,
    stateDir,
    gatewayPort,
    apiPort,
    xdsPort,
    workloadCertTtl: flags['workload-cert-ttl'],
    caDir: flags['ca-dir'],
    accessLog: flags['access-log'],
    capture,
    log,
  });
  const { info } = mesh;
  const lines = [
    `Trellis mesh is up (${info.instances.length} proxies, ${info.capture === 'netns' ? 'transparent capture' : 'explicit HTTP_PROXY'}). Logs: ${stateDir}/logs`,
    '',
    ...info.instances.map(
      (i) =>
        `  ${i.role === 'gateway' ? 'gateway' : 'sidecar'}  ${i.id.padEnd(36)} admin http://${i.address}:${i.adminPort}/stats/prometheus`,
    ),
    '',
    `  control plane API  ${info.controlPlane.api}`,
    ...info.gateways.map((g) => `  ingress gateway    ${g}`),
    '',
    'Try: trellis proxy-status · trellis get vs -A · trellis apply -f <file> · Ctrl-C stops everything',
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  await stopped;
  process.stdout.write('stopping...\n');
  await mesh.stop();
  return 0;
}
