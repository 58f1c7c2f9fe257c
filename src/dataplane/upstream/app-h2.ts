// HTTP/2 without TLS (h2c, prior knowledge) to the app beside the proxy, for the workload ports whose
// protocol is GRPC, HTTP2 or GRPC-WEB: one multiplexed session per port, opened on first use and
// again after the app closed it. The app is on loopback, so a new session costs a connect.
import http2, { type ClientHttp2Session } from 'node:http2';
import net from 'node:net';

export class AppH2Session {
  private readonly port: number;
  private session: ClientHttp2Session | undefined;

  constructor(port: number) {
    this.port = port;
  }

  /** The live session, or a new one. */
  readonly get = (): ClientHttp2Session => {
    const s = this.session;
    if (s && !s.closed && !s.destroyed) return s;
    const port = this.port;
    const session = http2.connect(`http://127.0.0.1:${port}`, {
      createConnection: () => net.connect({ host: '127.0.0.1', port, noDelay: true }),
    });
    const forget = () => {
      if (this.session === session) this.session = undefined;
    };
    session.on('close', forget);
    session.on('goaway', forget);
    // A failed connect fails the streams on it; the session is only forgotten.
    session.on('error', forget);
    this.session = session;
    return session;
  };

  close(): void {
    this.session?.close();
    this.session = undefined;
  }
}
