/**
 * Child process of durability.test.ts: inserts 2NN-sized versions into a SQLite file, printing
 * `written <version> <seed>` as soon as each insert resolves, then waits to be killed with SIGKILL.
 * Run with `node --import ./register-ts.mjs durability-child.ts <db path> <versions>`.
 */
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { TWO_NN_SHAPES, newVersion, weightsFor } from './fixtures.js';

const [path, count = '3'] = process.argv.slice(2);
if (!path) throw new Error('usage: durability-child.ts <db path> [versions]');
const storage = new SqliteStorage(path);
await storage.init();
const version = newVersion(TWO_NN_SHAPES);
for (let i = 1; i <= Number(count); i++) {
  const meta = await storage.insertModelVersion(version, weightsFor(version, i));
  process.stdout.write(`written ${meta.version} ${i}\n`);
}
// Never close the database: the parent kills this process with SIGKILL.
setInterval(() => undefined, 60_000);
