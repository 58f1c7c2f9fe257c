// nginx as the reference proxy: one worker, keepalive to the upstream, no access log — the best
// proxy runnable here, measured in the same run as ours. Three configurations: HTTP (proxy_pass), the
// stream module for TCP (Debian's dynamic module) and grpc_pass for gRPC.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface NginxProxy {
  pid: number;
  stop(): Promise<void>;
}

const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

function tempPaths(dir: string): string {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((p) => `${p}_temp_path ${dir};`)
    .join('\n  ');
}

async function startNginx(conf: (dir: string) => string): Promise<NginxProxy> {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-bench-nginx-'));
  await writeFile(
    path.join(dir, 'nginx.conf'),
    `worker_processes 1;\npid ${dir}/nginx.pid;\nerror_log stderr warn;\n${conf(dir)}`,
  );
  const child: ChildProcess = spawn(
    'nginx',
    ['-c', path.join(dir, 'nginx.conf'), '-p', dir, '-g', 'daemon off;'],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` },
    },
  );
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', () => resolve());
  });
  return {
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** HTTP/1.1 on `h1Port`, h2c on `h2Port`, both to the upstream over pooled HTTP/1.1. */
export function startNginxProxy(upstreamPort: number, h1Port: number, h2Port: number): Promise<NginxProxy> {
  return startNginx(
    (dir) => `events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  ${tempPaths(dir)}
  upstream app {
    server 127.0.0.1:${upstreamPort};
    keepalive 512;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:${h1Port};
    listen 127.0.0.1:${h2Port} http2;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
}

/** The stream module: `port` → the upstream, bytes as they come (TCP passthrough). */
export function startNginxStream(upstreamPort: number, port: number): Promise<NginxProxy> {
  if (!existsSync(STREAM_MODULE)) throw new Error(`nginx's stream module is missing: ${STREAM_MODULE}`);
  return startNginx(
    () => `load_module ${STREAM_MODULE};
events { worker_connections 4096; }
stream {
  server {
    listen 127.0.0.1:${port};
    proxy_pass 127.0.0.1:${upstreamPort};
  }
}
`,
  );
}

/** grpc_pass: h2c on `port` → the gRPC upstream over h2c, connections kept alive. */
export function startNginxGrpc(upstreamPort: number, port: number): Promise<NginxProxy> {
  return startNginx(
    (dir) => `events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  ${tempPaths(dir)}
  upstream grpc_app {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port} http2;
    location / { grpc_pass grpc://grpc_app; }
  }
}
`,
  );
}
