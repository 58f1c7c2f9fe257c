// The gRPC test app: a real @grpc/grpc-js server (HTTP/2 without TLS, as an app behind a sidecar
// listens) for trellis.test.Echo, and the client constructor. Runs standalone too:
// `PORT=9000 NAME=echo node samples/grpc/echo.ts` (`trellis up samples/grpc/grpc.yaml` runs it so).
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export interface SayRequest {
  text?: string;
  failCode?: number;
  key?: string;
  failTimes?: number;
  size?: number;
  count?: number;
  delayMs?: number;
  payload?: Buffer;
}

export interface SayReply {
  text: string;
  payload: Buffer;
  server: string;
  received: number;
}

const definition = protoLoader.loadSync(path.join(import.meta.dirname, 'echo.proto'), {
  keepCase: false,
  defaults: true,
});
const pkg = grpc.loadPackageDefinition(definition) as unknown as {
  trellis: { test: { Echo: grpc.ServiceClientConstructor } };
};
export const EchoClient = pkg.trellis.test.Echo;

/** A client of the service, typed. */
export interface Echo extends grpc.Client {
  Say(
    req: SayRequest,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, reply?: SayReply) => void,
  ): grpc.ClientUnaryCall;
  Download(req: SayRequest, opts?: grpc.CallOptions): grpc.ClientReadableStream<SayReply>;
  Chat(opts?: grpc.CallOptions): grpc.ClientDuplexStream<SayRequest, SayReply>;
}

export function echoClient(target: string, options: grpc.ChannelOptions = {}): Echo {
  return new EchoClient(target, grpc.credentials.createInsecure(), options) as unknown as Echo;
}

export interface EchoServer {
  server: grpc.Server;
  port: number;
  /** Calls received, by method, with the metadata they carried. */
  calls: { method: string; metadata: grpc.Metadata; text: string }[];
  /** Server-side cancellations seen (the client's deadline or reset reached the app). */
  cancelled: number;
  /** Replies the last Download has handed to its stream so far. */
  downloaded: number;
  close(): Promise<void>;
}

const MAX = 16 * 1024 * 1024;

export async function startEchoServer(name: string, port = 0): Promise<EchoServer> {
  const tries = new Map<string, number>();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX,
    'grpc.max_send_message_length': MAX,
  });
  const self = { calls: [], cancelled: 0, downloaded: 0 } as unknown as EchoServer;
  const reply = (r: SayRequest): SayReply => ({
    text: r.text ?? '',
    payload: Buffer.alloc(r.size ?? 0, 0x61),
    server: name,
    received: r.payload?.length ?? 0,
  });
  /** The status a request asks to fail with, or undefined. */
  const failure = (r: SayRequest): grpc.StatusObject | undefined => {
    if (r.failTimes && r.key) {
      const n = (tries.get(r.key) ?? 0) + 1;
      tries.set(r.key, n);
      if (n <= r.failTimes) {
        const metadata = new grpc.Metadata();
        metadata.set('x-try', String(n));
        return { code: grpc.status.UNAVAILABLE, details: `try ${n} of ${r.key}`, metadata };
      }
    }
    if (r.failCode) {
      const metadata = new grpc.Metadata();
      metadata.set('x-detail', 'custom trailer');
      return { code: r.failCode, details: 'asked to fail', metadata };
    }
    return undefined;
  };
  const later = (ms: number | undefined, fn: () => void) => (ms ? setTimeout(fn, ms) : fn());
  server.addService(EchoClient.service, {
    Say(call: grpc.ServerUnaryCall<SayRequest, SayReply>, done: grpc.sendUnaryData<SayReply>) {
      self.calls.push({ method: 'Say', metadata: call.metadata, text: call.request.text ?? '' });
      call.on('cancelled', () => self.cancelled++);
      const r = call.request;
      later(r.delayMs, () => {
        const f = failure(r);
        if (f) return done(f as grpc.ServiceError);
        const initial = new grpc.Metadata();
        initial.set('x-server', name);
        call.sendMetadata(initial);
        const trailer = new grpc.Metadata();
        trailer.set('x-echo-trailer', 'kept');
        done(null, reply(r), trailer);
      });
    },
    Download(call: grpc.ServerWritableStream<SayRequest, SayReply>) {
      self.calls.push({ method: 'Download', metadata: call.metadata, text: call.request.text ?? '' });
      call.on('cancelled', () => self.cancelled++);
      const r = call.request;
      let sent = 0;
      // Writes as fast as the client reads, no faster: the stream's backpressure all the way.
      const more = () => {
        while (sent < (r.count ?? 0)) {
          sent++;
          self.downloaded = sent;
          if (!call.write(reply(r))) return void call.once('drain', more);
        }
        const trailer = new grpc.Metadata();
        trailer.set('x-sent', String(sent));
        call.end(trailer);
      };
      more();
    },
    Chat(call: grpc.ServerDuplexStream<SayRequest, SayReply>) {
      self.calls.push({ method: 'Chat', metadata: call.metadata, text: '' });
      call.on('cancelled', () => self.cancelled++);
      let n = 0;
      call.on('data', (r: SayRequest) => {
        n++;
        call.write(reply(r));
      });
      call.on('end', () => {
        const trailer = new grpc.Metadata();
        trailer.set('x-messages', String(n));
        call.end(trailer);
      });
    },
  });
  self.server = server;
  self.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  self.close = () =>
    new Promise<void>((resolve) => {
      server.tryShutdown(() => resolve());
      setTimeout(() => server.forceShutdown(), 2000).unref();
    });
  return self;
}

if (import.meta.main) {
  const s = await startEchoServer(process.env.NAME ?? 'echo', Number(process.env.PORT ?? 0));
  console.log(`grpc echo ${process.env.NAME ?? 'echo'} listening on 127.0.0.1:${s.port}`);
}
