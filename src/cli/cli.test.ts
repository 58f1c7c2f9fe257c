// Runs the real CLI as a child process against a fake control plane that answers a few endpoints
// with canned JSON, and checks stdout, stderr and exit codes. (The real control plane is tested
// end to end elsewhere.)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

interface Seen {
  method: string;
  url: string;
  body: unknown;
}

const created = new Date(Date.now() - 20 * 60_000).toISOString();
const vs = (name: string, hosts: string[]) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name, namespace: 'default', creationTimestamp: created, resourceVersion: '3' },
  spec: { hosts, http: [{ route: [{ destination: { host: hosts[0] } }] }] },
});

const proxyStatus = {
  revision: 5,
  convergence: { revision: 4, ms: 8.25, proxies: 2 },
  proxies: [
    {
      id: 'productpage-v1-0.default',
      role: 'sidecar',
      workload: 'productpage-v1',
      namespace: 'default',
      identity: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage',
      healthy: true,
      connectedAt: created,
      latest: { version: 'aaa111', revision: 5 },
      acked: { version: 'aaa111', revision: 5, at: created, pushMs: 2.5 },
      status: 'SYNCED',
    },
    {
      id: 'reviews-v1-0.default',
      role: 'sidecar',
      workload: 'reviews-v1',
      namespace: 'default',
      identity: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews',
      healthy: true,
      connectedAt: created,
      latest: { version: 'bbb222', revision: 5 },
      acked: { version: 'bbb000', revision: 4, at: created, pushMs: 3 },
      nack: { version: 'bbb222', reason: 'cluster outbound|9080|v9|ratings has no endpoints', at: created },
      status: 'NACKED',
    },
  ],
};

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function fakeControlPlane(seen: Seen[]): http.Server {
  return http.createServer(async (req, res) => {
    let text = '';
    for await (const c of req) text += c;
    const body = text ? JSON.parse(text) : undefined;
    const url = req.url ?? '';
    seen.push({ method: req.method ?? '', url, body });
    const route = `${req.method} ${url}`;
    if (route === 'GET /api/v1/version') return send(res, 200, { version: '9.9.9', revision: 5 });
    if (route === 'POST /api/v1/apply') {
      const sources = body.sources as { file: string; text: string }[];
      const bad = sources.find((s) => s.text.includes('rout:'));
      if (bad) {
        return send(res, 400, {
          code: 'TRL_VALIDATION',
          message: '2 errors found; nothing was applied',
          issues: [
            {
              file: bad.file,
              line: 8,
              column: 7,
              path: 'spec.http[0].rout',
              message: 'unknown field "rout" (did you mean "route"?)',
              resource: 'VirtualService default/reviews',
            },
            { file: bad.file, line: 3, path: 'metadata.name', message: 'required field is missing' },
          ],
        });
      }
      return send(res, 200, {
        revision: body.dryRun ? 5 : 6,
        dryRun: body.dryRun,
        results: sources.map((s) => ({
          resource: `VirtualService default/${path.basename(s.file, '.yaml')}`,
          action: 'created',
        })),
        warnings: [
          { file: sources[0].file, line: 10, path: 'spec.http[0].retries', message: 'not enforced yet' },
        ],
      });
    }
    if (route === 'GET /api/v1/resources/vs/default')
      return send(res, 200, { items: [vs('reviews', ['reviews']), vs('bookinfo', ['*'])] });
    if (route === 'GET /api/v1/resources/vs/default/reviews')
      return send(res, 200, vs('reviews', ['reviews']));
    if (route === 'POST /api/v1/delete' && body.refs) {
      const refs = body.refs as { kind: string; namespace: string; name: string }[];
      if (refs.some((r) => r.name !== 'reviews')) {
        return send(res, 404, {
          code: 'TRL_NOT_FOUND',
          message: 'VirtualService default/missing not found; nothing was deleted',
        });
      }
      return send(res, 200, {
        revision: 7,
        results: refs.map((r) => ({
          resource: `VirtualService ${r.namespace}/${r.name}`,
          action: 'deleted',
        })),
      });
    }
    if (route === 'GET /api/v1/proxy-status') return send(res, 200, proxyStatus);
    if (url.startsWith('/api/v1/resources/vs/default/')) {
      return send(res, 404, { code: 'TRL_NOT_FOUND', message: 'VirtualService default/missing not found' });
    }
    send(res, 404, { code: 'TRL_NOT_FOUND', message: `no such endpoint ${route}` });
  });
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('trellis CLI against a fake control plane', () => {
  const seen: Seen[] = [];
  const server = fakeControlPlane(seen);
  let api = '';
  let dir = '';

  function trellis(args: string[], opts: { api?: boolean } = {}): Promise<Run> {
    const argv = [MAIN, ...args, ...(opts.api === false ? [] : ['--api', api])];
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        argv,
        { cwd: dir, env: { ...process.env, TRELLIS_API: '', TRELLIS_STATE_DIR: '' } },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    dir = await mkdtemp(path.join(tmpdir(), 'trellis-cli-'));
    await mkdir(path.join(dir, 'manifests'));
    await writeFile(path.join(dir, 'manifests', 'reviews.yaml'), 'kind: VirtualService\n');
    await writeFile(path.join(dir, 'manifests', 'bookinfo.yaml'), 'kind: VirtualService\n');
    await writeFile(path.join(dir, 'manifests', 'notes.txt'), 'ignored\n');
    await writeFile(path.join(dir, 'bad.yaml'), 'kind: VirtualService\nspec:\n  http:\n  - rout: []\n');
  });

  after(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('apply -f <dir> --dry-run: every manifest in order, results, warnings, revision', async () => {
    seen.length = 0;
    const r = await trellis(['apply', '-f', 'manifests', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'VirtualService default/bookinfo created (dry run)\nVirtualService default/reviews created (dry run)\nrevision 5 (dry run)\n',
    );
    assert.equal(r.stderr, 'Warning: manifests/bookinfo.yaml:10: spec.http[0].retries: not enforced yet\n');
    const req = seen.find((s) => s.url === '/api/v1/apply');
    assert.deepEqual(req?.body, {
      sources: [
        { file: 'manifests/bookinfo.yaml', text: 'kind: VirtualService\n' },
        { file: 'manifests/reviews.yaml', text: 'kind: VirtualService\n' },
      ],
      dryRun: true,
    });
  });

  test('apply with validation errors: exit 65, every issue with file:line, nothing printed as applied', async () => {
    const r = await trellis(['apply', '-f', 'bad.yaml']);
    assert.equal(r.code, 65);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      'error: 2 errors found; nothing was applied\n' +
        '  bad.yaml:8:7 VirtualService default/reviews: spec.http[0].rout: unknown field "rout" (did you mean "route"?)\n' +
        '  bad.yaml:3: metadata.name: required field is missing\n',
    );
  });

  test('apply of a missing file: exit 1, no request sent', async () => {
    seen.length = 0;
    const r = await trellis(['apply', '-f', 'nope.yaml']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'error: nope.yaml: no such file or directory\n');
    assert.equal(seen.length, 0);
  });

  test('get vs: a table sorted by name', async () => {
    const r = await trellis(['get', 'vs']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'NAME       HOSTS     GATEWAYS   AGE\nbookinfo   *         mesh       20m\nreviews    reviews   mesh       20m\n',
    );
  });

  test('get vs <name> -o json: the object itself', async () => {
    const r = await trellis(['get', 'vs', 'reviews', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), vs('reviews', ['reviews']));
  });

  test('get vs <missing>: exit 1 with the API message', async () => {
    const r = await trellis(['get', 'vs', 'missing']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'error: VirtualService default/missing not found\n');
  });

  test('delete vs reviews', async () => {
    const r = await trellis(['delete', 'vs', 'reviews']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'VirtualService default/reviews deleted\nrevision 7\n');
  });

  test('delete of several names is one request: a missing one deletes nothing', async () => {
    const r = await trellis(['delete', 'vs', 'reviews', 'missing']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /missing not found; nothing was deleted/);
    assert.equal(r.stdout, '');
  });

  test('proxy-status (ps): NACKED row, its reason under the table, convergence footer', async () => {
    const r = await trellis(['ps']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        'NAME                       ROLE      WORKLOAD                 STATUS   VERSION   REVISION   PUSH(ms)   HEALTHY',
        'productpage-v1-0.default   sidecar   productpage-v1.default   SYNCED   aaa111    5          2.5        yes',
        'reviews-v1-0.default       sidecar   reviews-v1.default       NACKED   bbb000    4          3          yes',
        '',
        'reviews-v1-0.default: NACK bbb222: cluster outbound|9080|v9|ratings has no endpoints',
        '',
        'store revision 5; last change converged on all 2 proxies in 8.25 ms (revision 4)',
        '',
      ].join('\n'),
    );
  });

  test('version: the CLI and the control plane', async () => {
    const r = await trellis(['version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^trellis \d+\.\d+\.\d+\ncontrol plane 9\.9\.9\n$/);
  });

  test('finds the API through <state-dir>/control-plane.json', async () => {
    await mkdir(path.join(dir, 'state'), { recursive: true });
    await writeFile(path.join(dir, 'state', 'control-plane.json'), JSON.stringify({ pid: 1, api }));
    const r = await trellis(['get', 'vs', 'reviews', '-o', 'yaml', '--state-dir', 'state'], { api: false });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^apiVersion: networking\.istio\.io\/v1\nkind: VirtualService\n/);
  });

  test('version without a control plane: only the CLI, exit 0', async () => {
    const r = await trellis(['version'], { api: false });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^trellis \d+\.\d+\.\d+\n$/);
  });

  test('unknown command: exit 64 with a suggestion', async () => {
    const r = await trellis(['aplly'], { api: false });
    assert.equal(r.code, 64);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      'error: unknown command "aplly" for "trellis" (did you mean "apply"?)\nRun \'trellis --help\' for usage.\n',
    );
  });

  test('unknown flag: exit 64 with a suggestion', async () => {
    const r = await trellis(['get', 'vs', '--namspace', 'x']);
    assert.equal(r.code, 64);
    assert.match(r.stderr, /^error: unknown flag --namspace \(did you mean "--namespace"\?\)\n/);
  });

  test('--help, help <cmd> and <cmd> --help: exit 0 with usage', async () => {
    const top = await trellis(['--help'], { api: false });
    assert.equal(top.code, 0);
    assert.match(top.stdout, /Usage: trellis <command>/);
    assert.match(top.stdout, /proxy-status \(ps\)/);
    const none = await trellis([], { api: false });
    assert.equal(none.code, 0);
    assert.equal(none.stdout, top.stdout);
    const get = await trellis(['get', '--help']);
    assert.equal(get.code, 0);
    assert.match(get.stdout, /Usage: trellis get <kind>/);
    const pc = await trellis(['help', 'pc'], { api: false });
    assert.equal(pc.code, 0);
    assert.match(pc.stdout, /Usage: trellis proxy-config <proxy>/);
  });

  test('no control plane: a clear error, exit 1', async () => {
    const r = await trellis(['get', 'vs'], { api: false });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^error: cannot reach the Trellis control plane: .*control-plane\.json does not exist; is `trellis up` running\? \(set --api or TRELLIS_API\)\n$/,
    );
    const closed = await trellis(['get', 'vs', '--api', 'http://127.0.0.1:1'], { api: false });
    assert.equal(closed.code, 1);
    assert.equal(
      closed.stderr,
      'error: cannot reach the Trellis control plane at http://127.0.0.1:1: is `trellis up` running? (set --api or TRELLIS_API)\n',
    );
  });
});
