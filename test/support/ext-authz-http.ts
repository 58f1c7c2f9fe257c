// A real HTTP external authorizer for the ext-authz tests, run as its own process: it decides by the
// request's `x-ext-authz` header, as Istio's sample ext-authz server does (allow / deny / hang), and
// tells what it saw in the headers of its answer. Prints `{"port": N}` once it listens.
import http from 'node:http';

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => {
    body += c;
  });
  req.on('end', () => {
    const decision = req.headers['x-ext-authz'];
    const seen = JSON.stringify({ method: req.method, path: req.url, headers: req.headers, body });
    if (decision === 'hang') return; // never answers: the proxy's timeout must end the check
    if (decision === 'allow') {
      res.writeHead(200, {
        'x-ext-authz-check': 'allowed',
        'x-seen-request': Buffer.from(seen).toString('base64'),
        'x-ext-authz-allowed': 'yes',
        'x-not-listed': 'never upstream',
      });
      res.end();
      return;
    }
    if (decision === 'boom') {
      res.writeHead(500);
      res.end('authorizer broke');
      return;
    }
    res.writeHead(decision === 'teapot' ? 418 : 403, {
      'content-type': 'text/plain',
      'x-ext-authz-reason': 'not on the list',
      'x-not-listed': 'never downstream',
    });
    res.end(`denied by ext-authz for ${req.url}`);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
