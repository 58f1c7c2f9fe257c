// The TCP bench upstream: every byte back as it came, on $PORT. The load generator's ping-pong
// (tcp-load.ts) measures the path in front of it.
import net from 'node:net';

const port = Number(process.env.PORT ?? process.argv[2]);
net
  .createServer({ noDelay: true }, (c) => c.pipe(c).on('error', () => c.destroy()))
  .listen(port, '127.0.0.1');
