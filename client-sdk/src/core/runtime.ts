/**
 * The few host facilities the core needs (a macrotask yield, a clock, WebCrypto), found by feature
 * detection on `globalThis`. The core is compiled without DOM or Node typings (tsconfig.core.json),
 * so these are typed here, minimally, as optional: browsers, Node and React Native all provide
 * `setTimeout`, and most provide `setImmediate` or `MessageChannel` and WebCrypto.
 */

interface MessagePortLike {
  onmessage: ((event: unknown) => void) | null;
  postMessage(message: unknown): void;
  close?(): void;
  unref?(): void;
}

interface HostGlobals {
  fetch?: FetchLike;
  AbortSignal?: { timeout?(ms: number): AbortSignalLike };
  setTimeout?(callback: () => void, ms: number): unknown;
  clearTimeout?(timer: unknown): void;
  setImmediate?(callback: () => void): unknown;
  MessageChannel?: new () => { port1: MessagePortLike; port2: MessagePortLike };
  performance?: { now?(): number };
  crypto?: {
    subtle?: SubtleCryptoLike;
  };
}

/** A WebCrypto key, as opaque to the core as it is to the page (typed minimally: no DOM typings here). */
export interface CryptoKeyLike {
  readonly type: string;
  readonly extractable: boolean;
  readonly algorithm: { readonly name: string };
}

export interface CryptoKeyPairLike {
  readonly publicKey: CryptoKeyLike;
  readonly privateKey: CryptoKeyLike;
}

/** The part of WebCrypto's SubtleCrypto the SDK uses (device keys, thumbprints, proofs). */
export interface SubtleCryptoLike {
  generateKey(algorithm: { name: 'ECDSA'; namedCurve: 'P-256' }, extractable: boolean, usages: readonly ('sign' | 'verify')[]): Promise<CryptoKeyPairLike>;
  exportKey(format: 'jwk', key: CryptoKeyLike): Promise<Record<string, unknown>>;
  sign(algorithm: { name: 'ECDSA'; hash: 'SHA-256' }, key: CryptoKeyLike, data: Uint8Array): Promise<ArrayBuffer>;
  digest(algorithm: 'SHA-256', data: Uint8Array): Promise<ArrayBuffer>;
}

/**
 * The part of `fetch`'s init the SDK types (uploads over HTTP). It also passes a `signal` (an
 * AbortSignal, timeoutSignal) that it leaves untyped, so that every WHATWG fetch fits FetchLike.
 */
export interface FetchInitLike {
  method: 'PUT';
  headers: Record<string, string>;
  body: Uint8Array<ArrayBuffer>;
}
/** AbortSignal, as opaque to the core as the rest of the DOM. */
export interface AbortSignalLike {
  readonly aborted: boolean;
}
export interface FetchResponseLike {
  readonly status: number;
  json(): Promise<unknown>;
}
/** `fetch`, typed minimally (FederatedClientOptions.fetch takes any WHATWG fetch: browsers, Node 18+, React Native). */
export type FetchLike = (url: string, init: FetchInitLike) => Promise<FetchResponseLike>;

const host = globalThis as unknown as HostGlobals;

type Resolve = () => void;
let channel: { port1: MessagePortLike; port2: MessagePortLike } | null = null;
const channelWaiters: Resolve[] = [];

function yieldViaMessageChannel(resolve: Resolve): void {
  if (channel === null) {
    channel = new host.MessageChannel!();
    channel.port1.onmessage = () => channelWaiters.shift()?.();
    // Node's ports keep the process alive; browsers have no unref.
    channel.port1.unref?.();
    channel.port2.unref?.();
  }
  channelWaiters.push(resolve);
  channel.port2.postMessage(0);
}

/**
 * Lets queued events (condition changes, socket traffic, UI) run between training batches.
 * Uses a macrotask that is not clamped or throttled: `setImmediate` (Node, React Native), else a
 * `MessageChannel` (browsers: unlike `setTimeout(0)` and `requestAnimationFrame`, it is neither
 * clamped to 4 ms nor paused in background tabs), else `setTimeout(0)`.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise<void>((resolve) => {
    if (typeof host.setImmediate === 'function') host.setImmediate(resolve);
    else if (typeof host.MessageChannel === 'function') yieldViaMessageChannel(resolve);
    else if (typeof host.setTimeout === 'function') host.setTimeout(resolve, 0);
    else resolve();
  });
}

/** Resolves after `ms` milliseconds (host `setTimeout`). */
export function delay(ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    if (typeof host.setTimeout === 'function') host.setTimeout(resolve, ms);
    else resolve();
  });
}

/**
 * Calls `callback` after `ms` milliseconds unless the returned function is called first. The timer
 * does not keep a Node process alive (`unref`).
 */
export function schedule(callback: () => void, ms: number): () => void {
  if (typeof host.setTimeout !== 'function') return () => undefined;
  const timer = host.setTimeout(callback, ms);
  (timer as { unref?(): void } | null)?.unref?.();
  return () => host.clearTimeout?.(timer);
}

/** Milliseconds from a monotonic clock (`performance.now()`: browsers, Node, React Native), else `Date.now()`. */
export function monotonicNow(): number {
  return typeof host.performance?.now === 'function' ? host.performance.now() : Date.now();
}

/**
 * WebCrypto's SubtleCrypto: browsers (secure contexts: https or localhost), Node >= 19 and Deno have
 * it as `globalThis.crypto.subtle`; elsewhere (React Native) install a WebCrypto polyfill.
 */
export function subtleCrypto(): SubtleCryptoLike {
  const subtle = host.crypto?.subtle;
  if (!subtle)
    throw new Error('device keys need WebCrypto (globalThis.crypto.subtle): serve the page over https or localhost, or install a WebCrypto polyfill');
  return subtle;
}

/** The host's fetch, when it has one. */
export function hostFetch(): FetchLike | undefined {
  return typeof host.fetch === 'function' ? host.fetch.bind(globalThis) : undefined;
}

/** A signal that aborts after `ms`, where the host has AbortSignal.timeout; else undefined (no timeout). */
export function timeoutSignal(ms: number): AbortSignalLike | undefined {
  return host.AbortSignal?.timeout?.(ms);
}
