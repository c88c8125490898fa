// Copies the operator dashboard's static files (HTML, CSS, browser JS) next to the compiled server:
// src/dashboard/public -> dist/dashboard/public. Part of `pnpm build`.
import { cpSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const from = join(root, 'src/dashboard/public');
const to = join(root, 'dist/dashboard/public');
mkdirSync(to, { recursive: true });
cpSync(from, to, { recursive: true, filter: (path) => !path.endsWith('tsconfig.json') });
