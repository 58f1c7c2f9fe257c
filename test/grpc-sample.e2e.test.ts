// docs/tasks/grpc.md on `trellis up samples/grpc/grpc.yaml`: the sample's client script, as an app
// beside the echo sidecar runs it (http_proxy names the sidecar, grpc-js tunnels through it), and
// from outside through the GRPC gateway server; then the gRPC metrics the task reads.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Mesh, ROOT, until } from './support/mesh.ts';

const run = promisify(execFile);
const CLIENT = path.join(ROOT, 'samples/grpc/client.ts');
let mesh: Mesh;

/** The sample client; a failed call exits 1 with its status printed all the same. */
async function client(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  try {
    const { stdout } = await run(process.execPath, [CLIENT, ...args], {
      env: { ...process.env, ...env },
      timeout: 30_000,
    });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; code?: number };
    if (e.code === 1 && e.stdout) return e.stdout;
    throw err;
  }
}

describe('the gRPC task on the echo sample', { timeout: 180_000 }, () => {
  before(async () => {
    mesh = await Mesh.up('samples/grpc/grpc.yaml');
  });
  after(async () => {
    await mesh?.down();
  });

  test('through the sidecar: reply, headers, trailers; an error status with its trailer', async () => {
    const env = { http_proxy: `http://127.0.0.1:${mesh.instance('echo-v1').outboundPort}` };
    const ok = await client(['say', 'hello'], env);
    assert.match(ok, /reply \{"text":"hello","server":"echo-v1","payload":0\}/);
    assert.match(ok, /headers .*"x-server":\["echo-v1"\]/);
    assert.match(ok, /status OK \(0\)/);
    assert.match(ok, /trailers .*"x-echo-trailer":\["kept"\]/);
    const fail = await client(['fail', 'NOT_FOUND'], env);
    assert.match(fail, /status NOT_FOUND \(5\) "asked to fail"/);
    assert.match(fail, /trailers .*"x-detail":\["custom trailer"\]/);
  });

  test('through the gateway: a bidirectional stream, and the gateway counts its messages', async () => {
    const target = new URL(mesh.gateway).host;
    const out = await client(['--target', target, '--authority', 'echo.example.com', 'chat', '4']);
    assert.equal(out.match(/^reply /gm)?.length, 4, out);
    assert.match(out, /trailers .*"x-messages":\["4"\]/);
    const admin = mesh.instance('istio-ingressgateway').adminPort;
    await until('the gateway to count 4 request messages', async () => {
      const text = await (await fetch(`http://127.0.0.1:${admin}/stats/prometheus`)).text();
      return /istio_request_messages_total\{[^}]*request_protocol="grpc",response_code="200",grpc_response_status="0"[^}]*\} 4/.test(
        text,
      );
    });
  });
});
