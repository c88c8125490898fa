/** Bundles the handler (server/dist/serverless/handler.js and everything it imports) into one CommonJS file with esbuild. */
import { build } from 'esbuild';

/** AWS Lambda's Node.js runtime the package targets. */
export const NODE_TARGET = 'node20';

/**
 * `index.js`: CommonJS (Lambda's `index.handler` and a plain `require` load it), minified, with the
 * third-party licence comments kept at its end. `import.meta.url` becomes the bundle's own file URL,
 * so the handler finds the model and the .wasm files next to it.
 */
export async function bundleHandler(entry: string): Promise<Uint8Array> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    target: NODE_TARGET,
    format: 'cjs',
    minify: true,
    legalComments: 'eof',
    write: false,
    logLevel: 'silent',
    define: { 'import.meta.url': '__flockModuleUrl' },
    banner: { js: 'var __flockModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
  });
  const [output] = result.outputFiles;
  if (!output || result.outputFiles.length !== 1) throw new Error(`esbuild produced ${result.outputFiles.length} files; expected one`);
  return output.contents;
}
