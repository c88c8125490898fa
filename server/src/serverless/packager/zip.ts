/** Writes the package's files into a zip (yazl, deflate) and measures it. */
import { createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { ZipFile } from 'yazl';
import type { PackageSizes } from './limits.js';

export interface PackageFile {
  /** Path inside the zip, with forward slashes. */
  name: string;
  data: Uint8Array;
}

/** A fixed timestamp, so that the same inputs give the same zip. */
const MTIME = new Date('2020-01-01T00:00:00Z');

export async function writeZip(path: string, files: readonly PackageFile[]): Promise<PackageSizes> {
  const zip = new ZipFile();
  let unzippedBytes = 0;
  for (const file of files) {
    // 0644: Lambda runs the code as another user, which must be able to read it.
    zip.addBuffer(Buffer.from(file.data.buffer, file.data.byteOffset, file.data.byteLength), file.name, { mtime: MTIME, mode: 0o100644 });
    unzippedBytes += file.data.byteLength;
  }
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(path));
  return { zippedBytes: (await stat(path)).size, unzippedBytes };
}
