// `npm run bench`: checks the tools, runs the data-plane and control-plane benches, prints the results
// and writes them into bench/README.md (between the RESULTS markers) and bench/results/*.json.
// `npm run bench -- --quick` is the smoke variant CI runs: every path is exercised and checked, with
// short runs; its figures mean nothing and it leaves README.md alone.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type RunResult, runDataPlane } from './dataplane/main.ts';
import { dataPlaneTables } from './dataplane/report.ts';

const BENCH = import.meta.dirname;
const TOOLS = ['h2load', 'wrk', 'nginx', 'taskset'];

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    scenario: { type: 'string', multiple: true },
    protocol: { type: 'string', multiple: true },
  },
});
const quick = values.quick ?? false;

function have(tool: string): boolean {
  return spawnSync('sh', ['-c', `PATH="$PATH:/usr/sbin" command -v ${tool}`]).status === 0;
}

const missing = TOOLS.filter((t) => !have(t));
if (missing.length) {
  console.error(`bench: ${missing.join(', ')} not found. Install them with: sh bench/setup.sh`);
  process.exit(69);
}
if (os.availableParallelism() < 2) {
  console.error('bench: needs 2 CPUs (the load generator and the proxy under test each get one)');
  process.exit(69);
}

const log = (l: string) => console.log(`bench: ${l}`);
const rounds = Number(values.rounds ?? (quick ? 1 : 3));
const started = new Date();
const dataPlane: RunResult[] = await runDataPlane({
  rounds,
  warmupSeconds: quick ? 1 : 10,
  rateSeconds: quick ? 2 : 15,
  maxSeconds: quick ? 2 : 10,
  only: values.scenario ?? [],
  protocols: (values.protocol ?? ['HTTP/1.1', 'HTTP/2']) as ('HTTP/1.1' | 'HTTP/2')[],
  log,
});
const failed = dataPlane.filter((r) => r.rate.failed || r.max.failed || r.rate.requests === 0);
for (const r of failed)
  console.error(`bench: ${r.protocol} ${r.scenario}: ${r.rate.failed + r.max.failed} requests failed`);

const cpOut = path.join(mkdtempSync(path.join(os.tmpdir(), 'trellis-bench-cp-')), 'results.json');
const cp = spawnSync(
  process.execPath,
  [path.join(BENCH, 'controlplane/main.ts'), ...(quick ? ['--quick'] : []), '--out', cpOut],
  { stdio: 'inherit' },
);
let controlPlane: { markdown: string; results: unknown } | undefined;
if (cp.status === 0) controlPlane = JSON.parse(readFileSync(cpOut, 'utf8'));
else console.error(`bench: control-plane bench failed (exit ${cp.status})`);
rmSync(path.dirname(cpOut), { recursive: true, force: true });

const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.arch();
const version = (cmd: string, args: string[]) => {
  const r = spawnSync('sh', ['-c', `PATH="$PATH:/usr/sbin" ${cmd} ${args.join(' ')} 2>&1`], {
    encoding: 'utf8',
  });
  return r.stdout.split('\n')[0].trim();
};
const machine = [
  `- Machine: ${os.availableParallelism()} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}`,
  `- Node.js ${process.version}; ${version('nginx', ['-v'])}; ${version('h2load', ['--version'])}; ${version('wrk', ['--version'])}`,
  `- Run: ${started.toISOString()}, ${rounds} round(s), commit ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()}`,
].join('\n');
const markdown = `${machine}\n\n${dataPlaneTables(dataPlane)}\n\n${controlPlane?.markdown ?? '_control-plane bench failed_'}\n`;
console.log(`\n${markdown}`);

if (!quick) {
  mkdirSync(path.join(BENCH, 'results'), { recursive: true });
  writeFileSync(
    path.join(BENCH, 'results', 'latest.json'),
    `${JSON.stringify({ started, machine, dataPlane, controlPlane: controlPlane?.results }, null, 2)}\n`,
  );
  const readme = path.join(BENCH, 'README.md');
  const text = readFileSync(readme, 'utf8');
  const begin = '<!-- RESULTS:BEGIN -->';
  const end = '<!-- RESULTS:END -->';
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${readme} lacks the ${begin} … ${end} markers`);
  writeFileSync(readme, `${text.slice(0, a + begin.length)}\n${markdown}\n${text.slice(b)}`);
  log(`results written to ${path.relative(process.cwd(), readme)} and bench/results/latest.json`);
}
process.exit(failed.length || !controlPlane ? 1 : 0);
