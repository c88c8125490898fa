// Copies the operator dashboard's static files (HTML, CSS, the browser's ES modules) next to the
// compiled server: src/dashboard/public -> dist/dashboard/public. Part of `pnpm build`. The target
// is emptied first: the controller serves any module it finds there, so a removed one must not linger.
import { cpSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const from = join(root, 'src/dashboard/public');
const to = join(root, 'dist/dashboard/public');
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true, filter: (path) => !path.endsWith('tsconfig.json') });
