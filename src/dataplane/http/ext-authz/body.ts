// The request body an external authorizer asks for (includeRequestBodyInCheck): read up to the
// limit before the check, then sent upstream in full, the bytes already read first. Only a provider
// that asks for it makes the proxy buffer, and never more than `max` bytes.
import { PassThrough, type Readable } from 'node:stream';

export interface BufferedBody {
  /** What the authorizer gets: the whole body, or its first `max` bytes. */
  head: Buffer;
  /** False when the body is longer than the limit. */
  complete: boolean;
  /** What goes upstream: every byte, those read here first. */
  replay: Readable;
}

export function bufferBody(body: Readable, max: number): Promise<BufferedBody> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (complete: boolean) => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onEnd);
      const all = Buffer.concat(chunks);
      const replay = new PassThrough();
      replay.write(all);
      if (complete) replay.end();
      else body.pipe(replay);
      resolve({ head: complete ? all : all.subarray(0, max), complete, replay });
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size > max) {
        body.pause();
        done(false);
      }
    };
    const onEnd = () => done(true);
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onEnd);
  });
}
