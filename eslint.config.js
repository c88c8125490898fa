// ESLint 9 flat config: typescript-eslint's type-aware rules on every TypeScript file and on the
// dashboard's JSDoc-typed script, each file checked with the tsconfig that compiles it.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const root = import.meta.dirname;

export default tseslint.config(
  { ignores: ['**/dist/', '**/node_modules/', 'bench/results/', 'e2e/artifacts/', 'coverage/', 'data/', 'sim-out/'] },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // Listed, not discovered: tests are compiled by tsconfig.test.json, which the project service would not find.
        project: [
          'server/tsconfig.test.json',
          'server/src/dashboard/public/tsconfig.json',
          'client-sdk/tsconfig.test.json',
          'demo-app/tsconfig.json',
          'e2e/tsconfig.json',
          'bench/tsconfig.json',
        ],
        tsconfigRootDir: root,
      },
    },
    rules: {
      // A rejected promise that nobody handles ends the Node process: `void` does not handle it, `.catch` does.
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: false }],
      '@typescript-eslint/no-misused-promises': 'error',
      // Async methods without await implement Promise-returning interfaces (storage, stores) and turn throws into rejections.
      '@typescript-eslint/require-await': 'off',
      // `const { dropped: _, ...kept } = x` omits a property.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
    },
  },
  {
    // Node scripts (build helpers, benchmarks, loaders) are plain JavaScript outside every tsconfig.
    files: ['**/*.mjs', '*.js', 'vitest.config.mts'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: globals.node },
  },
  {
    // One contract for every client: the CLI reaches the coordinator only through it (and the protocol), never its internals.
    // `privacy` is pure math (the accountant `flock dp` plans with offline), no coordinator state; the on-demand
    // processor is a client of the REST API and the broker that `flock processor` runs (imported lazily).
    files: ['server/src/cli/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../*', '!../contract', '!../contract/*', '!../privacy', '!../privacy/*', '!../on-demand/run-processor.js'],
              message:
                'The CLI imports only ../contract (and the SDK protocol, the pure privacy accountant, and the on-demand event processor, loaded when `flock processor` runs), not coordinator internals.',
            },
          ],
        },
      ],
    },
  },
  {
    // The contract itself depends on nothing of the coordinator: zod and the wire protocol only.
    files: ['server/src/contract/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['../*'], message: 'The contract imports only zod and the SDK protocol.' }] }],
    },
  },
  {
    // The dashboard's script, and the functions that scripts run inside a page.
    files: ['server/src/dashboard/public/**/*.js', 'e2e/scripts/**'],
    languageOptions: { globals: globals.browser },
  },
);
