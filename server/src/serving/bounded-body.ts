import type { IncomingMessage } from 'node:http';

/** A body over the limit: answered 413 (and the connection closed, the rest is not read). */
export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
}

/** The client went away before its body was complete: nothing to answer. */
export class BodyAbortedError extends Error {
  override readonly name = 'BodyAbortedError';
}

/**
 * Reads a request body of at most `limit` bytes into one Buffer: refused before reading when its
 * Content-Length says more, and as soon as the bytes read pass the limit otherwise (chunked).
 */
export function readBoundedBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(new BodyTooLargeError(`${declared} bytes; at most ${limit}`));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let settled = false;
    // Errors are made only when they happen (an Error's stack trace costs more than the rest of a small body).
    const fail = (error: () => Error): void => {
      if (settled) return;
      settled = true;
      chunks.length = 0;
      req.removeListener('data', onData);
      reject(error());
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.byteLength;
      if (total > limit) fail(() => new BodyTooLargeError(`more than ${limit} bytes`));
      else chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => {
      if (settled) return;
      settled = true;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    });
    // on, not once: a second error with no listener left would throw.
    req.on('error', () => fail(() => new BodyAbortedError('the request was aborted')));
    req.once('close', () => fail(() => new BodyAbortedError('the connection closed before the body ended')));
  });
}
