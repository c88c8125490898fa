import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'client-sdk',
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    environment: 'node',
    setupFiles: ['test/setup.ts'],
    testTimeout: 60_000,
  },
});
