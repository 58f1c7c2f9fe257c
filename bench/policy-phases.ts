// Per-request cost of the authenticate (JWT) and authorize phases on the bench's guarded sidecar:
// the phases the proxy builds from its compiled snapshot, run in a loop on one request.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sampleToken } from '../samples/bookinfo/security/jwt/gen-jwt.ts';
import { compile } from '../src/compile/compile.ts';
import { ProxyConfig } from '../src/dataplane/config.ts';
import { Exchange } from '../src/dataplane/http/context.ts';
import { Chain, type PhaseDeps } from '../src/dataplane/http/phase.ts';
import { authenticate } from '../src/dataplane/http/phases/authenticate.ts';
import { authorize } from '../src/dataplane/http/phases/authorize.ts';
import { normalize } from '../src/dataplane/http/phases/normalize.ts';
import { RequestTelemetry, UNKNOWN_PEER } from '../src/dataplane/telemetry.ts';
import { SILENT } from '../src/lib/log.ts';
import { createIstioMetrics } from '../src/telemetry/istio.ts';
import { Registry } from '../src/telemetry/metrics.ts';
import { decodeResources, proxyNodes } from '../test/support/bookinfo-mesh.ts';

const file = path.join(import.meta.dirname, 'dataplane/mesh.yaml');
const all = decodeResources(readFileSync(file, 'utf8'), file);
const proxies = proxyNodes(all.filter((r) => r.kind === 'Workload') as never);
const input = {
  revision: 1,
  resources: all.filter((r) => r.kind !== 'Workload'),
  proxies,
  mesh: { trustDomain: 'cluster.local' },
};
const token = await sampleToken({ expire: 3600, claims: { scope: 'bench' } });
const site = {
  kind: 'inbound',
  edge: false,
  reporter: 'destination',
  log: SILENT,
} as never;

const DEPS = {
  telemetry: new RequestTelemetry(createIstioMetrics(new Registry()), UNKNOWN_PEER),
} as PhaseDeps;

function chainFor(workload: string) {
  const node = proxies.find((p) => p.workload === workload)!;
  const cfg = ProxyConfig.build(compile(input as never, node));
  let done = 0;
  const chain = new Chain(
    site,
    [
      normalize,
      authenticate,
      authorize,
      {
        name: 'end',
        setup: () => () => {
          done++;
          return false;
        },
      },
    ],
    { kind: 'inbound', cfg, table: undefined, tableName: 'inbound', deps: DEPS },
    () => {},
  );
  return { chain, done: () => done, host: `${workload.replace('-v1', '')}.default.svc.cluster.local` };
}

function request(host: string) {
  const headers: Record<string, string> = {
    host,
    authorization: `Bearer ${token}`,
    'user-agent': 'h2load',
    accept: '*/*',
  };
  return {
    protocol: 'HTTP/2',
    method: 'GET',
    target: '/',
    authority: host,
    headers: { ...headers },
    hasBody: false,
    remoteAddress: '127.0.0.1',
    localAddress: '127.0.0.1',
    headersSent: false,
    respond() {
      throw new Error('answered');
    },
    write: () => true,
    end() {},
    onDrain() {},
    onClose() {},
    destroy() {},
  };
}

async function measure(workload: string, n: number): Promise<number> {
  const { chain, done, host } = chainFor(workload);
  const peer = {
    identity: 'spiffe://cluster.local/ns/default/sa/client',
    sni: `outbound_.80_._.${host}`,
    service: `${host}:80`,
  };
  // First one verifies the token (async); the rest hit the cache.
  chain.run(new Exchange(request(host) as never, site, peer));
  await new Promise((r) => setTimeout(r, 50));
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) chain.run(new Exchange(request(host) as never, site, peer));
  const ns = Number(process.hrtime.bigint() - t0) / n;
  if (done() !== n + 1) throw new Error(`${workload}: ${done()} of ${n + 1} passed`);
  return ns;
}

for (let round = 0; round < 3; round++) {
  const plain = await measure('upstream-v1', 200_000);
  const guarded = await measure('guarded-v1', 200_000);
  console.log(
    `round ${round}: normalize only ${(plain / 1000).toFixed(2)} µs, + JWT + 10 ALLOW rules ${(guarded / 1000).toFixed(2)} µs: +${((guarded - plain) / 1000).toFixed(2)} µs per request`,
  );
}
