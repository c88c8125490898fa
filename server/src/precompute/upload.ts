/** An uploaded precompute input, streamed to a file in the data directory within a size bound and made durable before its job exists. */
import { createWriteStream, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BadRequestException, PayloadTooLargeException } from '@nestjs/common';

class TooLarge extends Error {}

/** Writes `body` to `path` (at most `maxBytes`), fsyncs it, and resolves its size; on any failure the file is removed. */
export async function saveUpload(body: Readable, path: string, maxBytes: number, declaredBytes: number | null): Promise<number> {
  if (declaredBytes !== null && declaredBytes > maxBytes) throw new PayloadTooLargeException(`the input is larger than ${maxBytes} bytes`);
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      if (bytes > maxBytes) callback(new TooLarge());
      else callback(null, chunk);
    },
  });
  try {
    await pipeline(body, counter, createWriteStream(path, { flags: 'wx', mode: 0o600 }));
    const handle = await open(path, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    rmSync(path, { force: true });
    if (error instanceof TooLarge) throw new PayloadTooLargeException(`the input is larger than ${maxBytes} bytes`);
    throw new BadRequestException(`the upload did not complete (${error instanceof Error ? error.message : String(error)})`);
  }
  if (bytes === 0) {
    rmSync(path, { force: true });
    throw new BadRequestException('the input is empty');
  }
  return bytes;
}
