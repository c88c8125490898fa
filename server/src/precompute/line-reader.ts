/**
 * Reads a precompute input file line by line from a byte offset (a job's checkpoint), with each
 * line's 1-based number and the offset just past it. A line longer than the bound is never held in
 * memory: it comes back as `text: null` and the reading goes on at the next newline.
 */
import { createReadStream } from 'node:fs';

export interface SourceLine {
  /** The line without its `\n` (and a `\r` before it), or null when it is longer than the bound. */
  text: string | null;
  number: number;
  /** Byte offset just past the line (its newline included): where reading resumes after it. */
  end: number;
}

export interface ReadLinesOptions {
  /** Byte offset to start at: 0, or the end of a line. */
  start: number;
  /** Lines before `start` (so that numbers go on). */
  linesBefore: number;
  maxLineBytes: number;
  /** Read size. Default 64 KiB: the lines of one read are parsed without yielding the event loop. */
  chunkBytes?: number;
}

const NEWLINE = 0x0a;

function decode(parts: Buffer[]): string {
  const text = (parts.length === 1 ? parts[0]! : Buffer.concat(parts)).toString('utf8');
  return text.endsWith('\r') ? text.slice(0, -1) : text;
}

export async function* readLines(path: string, options: ReadLinesOptions): AsyncGenerator<SourceLine> {
  const { maxLineBytes } = options;
  let offset = options.start;
  let number = options.linesBefore;
  // The part of the current line read so far (copied out of the chunks), unless it is already too long.
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let tooLong = false;
  const stream = createReadStream(path, { start: options.start, highWaterMark: options.chunkBytes ?? 64 * 1024 });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let from = 0;
    for (let nl = chunk.indexOf(NEWLINE, from); nl >= 0; nl = chunk.indexOf(NEWLINE, from)) {
      number++;
      const piece = chunk.subarray(from, nl);
      const end = offset + nl + 1;
      if (tooLong || pendingBytes + piece.length > maxLineBytes) yield { text: null, number, end };
      else yield { text: decode([...pending, piece]), number, end };
      pending = [];
      pendingBytes = 0;
      tooLong = false;
      from = nl + 1;
    }
    const rest = chunk.subarray(from);
    if (!tooLong && rest.length > 0) {
      if (pendingBytes + rest.length > maxLineBytes) {
        tooLong = true;
        pending = [];
        pendingBytes = 0;
      } else {
        pending.push(Buffer.from(rest));
        pendingBytes += rest.length;
      }
    }
    offset += chunk.length;
  }
  // A last line without a newline.
  if (tooLong || pendingBytes > 0) yield { text: tooLong ? null : decode(pending), number: number + 1, end: offset };
}
