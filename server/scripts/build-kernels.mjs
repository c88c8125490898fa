// Compiles the hand-written WebAssembly kernels (src/aggregation/kernels/*.wat) to .wasm with wabt
// (WebAssembly's reference toolkit, compiled to wasm itself: no native build). Part of `pnpm build`.
// The .wasm is written next to its source (gitignored; vitest and the benches load it from src)
// and into dist, where the compiled server loads it.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import createWabt from 'wabt';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sourceDir = join(root, 'src/aggregation/kernels');
const targetDir = join(root, 'dist/aggregation/kernels');
const wabt = await createWabt();
mkdirSync(targetDir, { recursive: true });
for (const file of readdirSync(sourceDir).filter((name) => name.endsWith('.wat'))) {
  const module = wabt.parseWat(file, readFileSync(join(sourceDir, file), 'utf8'), { simd: true });
  try {
    module.validate();
    const { buffer } = module.toBinary({});
    const name = file.replace(/\.wat$/, '.wasm');
    writeFileSync(join(sourceDir, name), buffer);
    writeFileSync(join(targetDir, name), buffer);
  } finally {
    module.destroy();
  }
}
