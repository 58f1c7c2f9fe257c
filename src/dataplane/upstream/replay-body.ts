// A request body that can be sent more than once: what has been read is kept (up to a bound) so a
// retry can send it again, followed by whatever the client has yet to send. Past the bound, the body
// is no longer replayable and the retry layer stops retrying.
import { Readable } from 'node:stream';

export class ReplayableBody {
  private readonly source: Readable;
  private readonly limit: number;
  private chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  private failed: Error | undefined;
  /** The current try's stream: live chunks go to it. */
  private sink: Readable | undefined;
  replayable = true;

  constructor(source: Readable, limit: number) {
    this.source = source;
    this.limit = limit;
    source.on('data', (c: Buffer) => {
      if (this.replayable) {
        this.size += c.length;
        if (this.size > this.limit) {
          this.replayable = false;
          this.chunks = [];
        } else this.chunks.push(c);
      }
      if (this.sink && !this.sink.push(c)) source.pause();
    });
    source.once('end', () => {
      this.ended = true;
      this.sink?.push(null);
    });
    source.once('error', (err) => {
      this.failed = err;
      this.sink?.destroy(err);
    });
    source.pause();
  }

  /** A stream of the whole body for one try; the previous try's stream gets nothing more. */
  attempt(): Readable {
    const source = this.source;
    const r = new Readable({ read: () => source.resume() });
    for (const c of this.chunks) r.push(c);
    if (this.failed) r.destroy(this.failed);
    else if (this.ended) r.push(null);
    this.sink = r;
    return r;
  }
}
