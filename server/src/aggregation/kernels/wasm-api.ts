/**
 * The few parts of the WebAssembly JS API the kernels use, typed here: Node has the API, but its
 * TypeScript types come with the DOM lib, which the server does not load (nor does @types/node 20).
 * Read from globalThis so that the same code type-checks with and without the DOM lib.
 */
export interface WasmModule {
  readonly __wasmModule: never;
}

export interface WasmMemory {
  /** A SharedArrayBuffer for a shared memory. */
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}

export interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  /** `shared` needs `maximum` (pages of 64 KiB). */
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => { readonly exports: Record<string, unknown> };
  validate(bytes: Uint8Array): boolean;
}

/** The runtime's WebAssembly API, or null where there is none. */
export const webAssembly: WasmApi | null = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly ?? null;
