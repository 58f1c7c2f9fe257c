// A real gRPC external authorizer (envoy.service.auth.v3.Authorization/Check) for the ext-authz
// tests, on @grpc/grpc-js, run as its own process: it decides by the request's `x-ext-authz` header.
// Prints `{"port": N}` once it listens.
import * as grpc from '@grpc/grpc-js';
import { authorizationDefinition } from '../../src/dataplane/http/ext-authz/external-auth-proto.ts';

const def = grpc.loadPackageDefinition(authorizationDefinition()) as unknown as {
  envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } } } };
};

interface Check {
  attributes?: {
    source?: { principal?: string; address?: { socketAddress?: { address?: string } } };
    destination?: { principal?: string };
    request?: { http?: { method?: string; path?: string; host?: string; headers?: Record<string, string> } };
  };
}

const header = (key: string, value: string) => ({ header: { key, value } });

function check(call: grpc.ServerUnaryCall<Check, unknown>, done: grpc.sendUnaryData<unknown>): void {
  const a = call.request.attributes ?? {};
  const http = a.request?.http ?? {};
  const decision = http.headers?.['x-ext-authz'];
  if (decision === 'hang') return;
  const seen = JSON.stringify({
    method: http.method,
    path: http.path,
    host: http.host,
    headers: http.headers,
    source: a.source?.principal,
    destination: a.destination?.principal,
  });
  if (decision === 'allow') {
    done(null, {
      status: { code: 0 },
      okResponse: {
        headers: [
          header('x-ext-authz-check', 'allowed-grpc'),
          header('x-seen-request', Buffer.from(seen).toString('base64')),
        ],
        headersToRemove: ['x-secret'],
      },
    });
    return;
  }
  done(null, {
    status: { code: 7 }, // PERMISSION_DENIED
    deniedResponse: {
      status: { code: 401 },
      headers: [header('x-ext-authz-reason', 'grpc says no')],
      body: 'denied by grpc ext-authz',
    },
  });
}

const server = new grpc.Server();
server.addService(def.envoy.service.auth.v3.Authorization.service, { Check: check });
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
