// Compiles the hand-written WebAssembly kernels (src/aggregation/kernels/*.wat) to .wasm with wabt
// (WebAssembly's reference toolkit, compiled to wasm itself: no native build). Part of `pnpm build`.
// The .wasm is written next to its source (gitignored; vitest and the benches load it from src)
// and into dist, where the compiled server loads it.
//
// A kernel file that imports its memory also gets a `-shared.wasm` twin whose import is a shared
// memory (threads feature): an instance over it can read bytes that another thread (the upload
// listener's worker) wrote into that memory. Same code, only the memory's type differs; a shared
// memory import must declare a maximum (32768 pages: 2 GiB, float64-accumulator.ts's limit).
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import createWabt from 'wabt';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sourceDir = join(root, 'src/aggregation/kernels');
const targetDir = join(root, 'dist/aggregation/kernels');
const MEMORY_IMPORT = '(import "env" "memory" (memory 1))';
const SHARED_MEMORY_IMPORT = '(import "env" "memory" (memory 1 32768 shared))';
const wabt = await createWabt();
mkdirSync(targetDir, { recursive: true });

function compile(file, text, name, features) {
  const module = wabt.parseWat(file, text, features);
  try {
    module.validate(features);
    const { buffer } = module.toBinary({});
    writeFileSync(join(sourceDir, name), buffer);
    writeFileSync(join(targetDir, name), buffer);
  } finally {
    module.destroy();
  }
}

for (const file of readdirSync(sourceDir).filter((name) => name.endsWith('.wat'))) {
  const text = readFileSync(join(sourceDir, file), 'utf8');
  const name = file.replace(/\.wat$/, '');
  compile(file, text, `${name}.wasm`, { simd: true });
  if (text.includes(MEMORY_IMPORT)) compile(file, text.replace(MEMORY_IMPORT, SHARED_MEMORY_IMPORT), `${name}-shared.wasm`, { simd: true, threads: true });
}
