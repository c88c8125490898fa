/** An uploaded precompute input, streamed to a file in the data directory within a size bound and made durable before its job exists. */
import { createWriteStream, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BadRequestException, PayloadTooLargeException } from '@nestjs/common';

class TooLarge extends Error {}

/** The request body; express links its response as `res`. */
export type UploadBody = Readable & { res?: { setHeader(name: string, value: string): unknown } };

/**
 * Refuses an oversized upload with 413 without reading the rest of it: the response closes the
 * connection (else Node would read and discard the remaining body to keep the connection alive),
 * and the request stream is left open until then, so the client gets the answer, not a reset.
 */
function tooLarge(body: UploadBody, maxBytes: number): PayloadTooLargeException {
  body.res?.setHeader('Connection', 'close');
  return new PayloadTooLargeException(`the input is larger than ${maxBytes} bytes`);
}

/** Writes `body` to `path` (at most `maxBytes`), fsyncs it, and resolves its size; on any failure the file is removed. */
export async function saveUpload(body: UploadBody, path: string, maxBytes: number, declaredBytes: number | null): Promise<number> {
  if (declaredBytes !== null && declaredBytes > maxBytes) throw tooLarge(body, maxBytes);
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      if (bytes > maxBytes) callback(new TooLarge());
      else callback(null, chunk);
    },
  });
  // The body is piped, not part of the pipeline: a pipeline would destroy the request (and with it
  // the socket) on the size error, before the 413 could be sent.
  const written = pipeline(counter, createWriteStream(path, { flags: 'wx', mode: 0o600 }));
  const forwardError = (error: Error): void => void counter.destroy(error);
  body.once('error', forwardError);
  body.pipe(counter);
  try {
    await written;
    const handle = await open(path, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    body.unpipe(counter);
    rmSync(path, { force: true });
    if (error instanceof TooLarge) throw tooLarge(body, maxBytes);
    throw new BadRequestException(`the upload did not complete (${error instanceof Error ? error.message : String(error)})`);
  } finally {
    body.off('error', forwardError);
  }
  if (bytes === 0) {
    rmSync(path, { force: true });
    throw new BadRequestException('the input is empty');
  }
  return bytes;
}
