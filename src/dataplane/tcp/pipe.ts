// Two sockets joined byte for byte, as Envoy's tcp_proxy joins them: each direction pauses its reader
// while the other side's write buffer is full (so at most a socket's high-water mark is held per
// direction), a FIN is passed on as a FIN (half-close: a client may end its request and still read
// the answer), and the pair is closed together once both directions ended, either side failed, the
// connection sat idle for the idle timeout or outlived its maximum duration.
import type { Socket } from 'node:net';

export interface PipeOptions {
  /** No byte either way for this long closes both; 0: never. */
  idleTimeoutMs: number;
  /** Closed this long after it opened, busy or not (`maxConnectionDuration`); absent: never. */
  maxDurationMs?: number;
  /** Bytes from downstream to upstream (Istio's received) and back (sent), as they pass. */
  onReceived?(n: number): void;
  onSent?(n: number): void;
}

export type PipeEnd = 'closed' | 'idle_timeout' | 'max_duration' | 'downstream_reset' | 'upstream_reset';

export interface PipeResult {
  received: number;
  sent: number;
  end: PipeEnd;
}

/** Joins `down` and `up`; `done` runs once, after both sockets are closed. */
export function pipe(down: Socket, up: Socket, o: PipeOptions, done: (r: PipeResult) => void): void {
  const r: PipeResult = { received: 0, sent: 0, end: 'closed' };
  let last = performance.now();
  let ended = 0;
  let finished = false;
  let idle: NodeJS.Timeout | undefined;
  let max: NodeJS.Timeout | undefined;
  let open = 2;
  // A FIN from one side must not end the other: pipe passes it on itself.
  down.allowHalfOpen = true;
  up.allowHalfOpen = true;

  const finish = (end?: PipeEnd) => {
    if (finished) return;
    finished = true;
    if (end) r.end = end;
    clearTimeout(idle);
    clearTimeout(max);
    down.destroy();
    up.destroy();
  };
  const closed = () => {
    if (--open === 0) {
      finish();
      done(r);
    }
  };

  const forward = (from: Socket, to: Socket, count: (n: number) => void) => {
    from.on('data', (chunk: Buffer) => {
      last = performance.now();
      count(chunk.length);
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => from.resume());
    from.on('end', () => {
      // Passed on: the other side may still answer. Both directions over: nothing left to carry.
      to.end();
      if (++ended === 2) finish();
    });
  };
  forward(down, up, (n) => {
    r.received += n;
    o.onReceived?.(n);
  });
  forward(up, down, (n) => {
    r.sent += n;
    o.onSent?.(n);
  });
  down.on('error', () => finish('downstream_reset'));
  up.on('error', () => finish('upstream_reset'));
  down.once('close', closed);
  up.once('close', closed);

  // One timer per connection, re-armed for what is left of the window rather than reset per chunk.
  if (o.idleTimeoutMs > 0) {
    const check = () => {
      const quiet = performance.now() - last;
      if (quiet >= o.idleTimeoutMs) finish('idle_timeout');
      else idle = setTimeout(check, o.idleTimeoutMs - quiet);
    };
    idle = setTimeout(check, o.idleTimeoutMs);
  }
  if (o.maxDurationMs) max = setTimeout(() => finish('max_duration'), o.maxDurationMs);
  down.resume();
  up.resume();
}
