// The gRPC bench upstream: one unary method that answers with the message it got, served by
// @grpc/grpc-js over h2c — the implementation a Node gRPC service would use. No .proto: the method
// carries raw bytes, so the bench measures transport, not protobuf.
import { Server, ServerCredentials, type ServiceDefinition } from '@grpc/grpc-js';

export const ECHO_PATH = '/bench.Echo/Echo';

const identity = (b: Buffer) => b;
const service: ServiceDefinition = {
  Echo: {
    path: ECHO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

/** A 1 KB message framed as gRPC sends it: a zero flag byte and a big-endian length. */
export function grpcFrame(size = 1024): Buffer {
  const frame = Buffer.alloc(5 + size, 'x');
  frame[0] = 0;
  frame.writeUInt32BE(size, 1);
  return frame;
}

if (import.meta.main) {
  const port = Number(process.env.PORT ?? process.argv[2]);
  const server = new Server();
  server.addService(service, {
    Echo: (call: { request: Buffer }, cb: (e: null, r: Buffer) => void) => cb(null, call.request),
  });
  server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    process.stdout.write(`listening ${port}\n`);
  });
}
