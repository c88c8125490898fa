import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Builds the demo app once if its dist/ is missing (`pnpm build` at the root builds it too). */
export default function buildDemoAppIfMissing(): void {
  const demoDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'demo-app');
  if (existsSync(join(demoDir, 'dist', 'index.html')) && existsSync(join(demoDir, 'dist', 'mnist-slice.bin'))) return;
  execFileSync('pnpm', ['run', 'build'], { cwd: demoDir, stdio: 'inherit' });
}
