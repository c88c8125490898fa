/**
 * The inference log's append thread (sqlite-log-appender.ts): its own connection to the SQLite
 * file, one transaction per batch of records the main thread sends, answered once committed.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { InferenceLogEntry } from './inference-log.js';
import type { AppendReply, AppendRequest, AppendResult } from './sqlite-log-appender.js';
import { SqliteConnection } from './sqlite-connection.js';
import { INFERENCE_LOG_SCHEMA, insertInferenceLogRows } from './sqlite-inference-log.js';

const port = parentPort;
if (!port) throw new Error('inference log append thread: must run in a worker thread');

class AppendConnection extends SqliteConnection {
  append(entries: readonly InferenceLogEntry[]): void {
    insertInferenceLogRows(this.conn, entries);
  }
}

const connection = new AppendConnection((workerData as { path: string }).path, INFERENCE_LOG_SCHEMA);
await connection.init();
port.on('message', ({ id, entries }: AppendRequest) => {
  let reply: AppendResult;
  try {
    connection.append(entries);
    reply = { id, error: null };
  } catch (error) {
    reply = { id, error: error instanceof Error ? error.message : String(error) };
  }
  port.postMessage(reply satisfies AppendReply);
});
port.postMessage({ ready: true } satisfies AppendReply);
