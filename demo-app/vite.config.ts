import { defineConfig } from 'vite';

// The page works with or without cross-origin isolation: the wasm backend is forced single-threaded.
const crossOriginIsolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  base: './',
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 4000 },
  server: { headers: crossOriginIsolation },
  preview: { headers: crossOriginIsolation },
});
