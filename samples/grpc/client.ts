// A gRPC client for the echo sample, as an app in the mesh runs it: a plaintext channel to the mesh
// name, through the sidecar that grpc-js finds in grpc_proxy or http_proxy (a CONNECT tunnel with
// HTTP/2 inside). Prints the reply, the status and the metadata, so headers and trailers can be seen.
//
//   http_proxy=http://127.0.0.1:<outbound port> node samples/grpc/client.ts say hello
//   node samples/grpc/client.ts --target 127.0.0.1:<gateway port> --authority echo.example.com say hi
//   ... chat 5 | fail NOT_FOUND | flaky <key> <failures> | header <name> <value> say hi
import * as grpc from '@grpc/grpc-js';
import { echoClient, type SayReply, type SayRequest } from './echo.ts';

const args = process.argv.slice(2);
const flag = (name: string, fallback?: string) => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const [, v] = args.splice(i, 2);
  return v;
};
const target = flag('--target', 'echo:9000')!;
const authority = flag('--authority');
const md = new grpc.Metadata();
for (let i = args.indexOf('header'); i >= 0; i = args.indexOf('header')) {
  const [, name, value] = args.splice(i, 3);
  md.set(name, value);
}
const c = echoClient(target, authority ? { 'grpc.default_authority': authority } : {});
const show = (what: string, m: grpc.Metadata) => console.log(what, JSON.stringify(m.toJSON()));
const brief = (r: SayReply) => ({ text: r.text, server: r.server, payload: r.payload.length });
const [cmd, a, b] = args;

function done(s: grpc.StatusObject): void {
  console.log(`status ${grpc.status[s.code]} (${s.code}) ${JSON.stringify(s.details)}`);
  show('trailers', s.metadata);
  c.close();
  process.exitCode = s.code === grpc.status.OK ? 0 : 1;
}

if (cmd === 'chat') {
  const call = c.Chat({ deadline: Date.now() + 10_000 });
  call.on('metadata', (m: grpc.Metadata) => show('headers', m));
  call.on('data', (r: SayReply) => console.log('reply', JSON.stringify(brief(r))));
  call.on('error', () => {});
  call.on('status', done);
  for (let i = 0; i < Number(a ?? 3); i++) call.write({ text: `message ${i}` });
  call.end();
} else {
  const req: SayRequest =
    cmd === 'fail'
      ? { text: 'fail', failCode: grpc.status[(a ?? 'INTERNAL') as keyof typeof grpc.status] as number }
      : cmd === 'flaky'
        ? { text: 'flaky', key: a, failTimes: Number(b ?? 1) }
        : { text: a ?? 'hello' };
  const call = c.Say(req, md, { deadline: Date.now() + 10_000 }, (err, r) => {
    if (!err && r) console.log('reply', JSON.stringify(brief(r)));
  });
  call.on('metadata', (m: grpc.Metadata) => show('headers', m));
  call.on('status', done);
}
