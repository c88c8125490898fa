/**
 * The few host facilities the core needs (a macrotask yield, a clock, random ids), found by feature
 * detection on `globalThis`. The core is compiled without DOM or Node typings (tsconfig.core.json),
 * so these are typed here, minimally, as optional: browsers, Node and React Native all provide
 * `setTimeout`, and most provide `setImmediate` or `MessageChannel` and `crypto`.
 */

interface MessagePortLike {
  onmessage: ((event: unknown) => void) | null;
  postMessage(message: unknown): void;
  close?(): void;
  unref?(): void;
}

interface HostGlobals {
  setTimeout?(callback: () => void, ms: number): unknown;
  setImmediate?(callback: () => void): unknown;
  MessageChannel?: new () => { port1: MessagePortLike; port2: MessagePortLike };
  performance?: { now?(): number };
  crypto?: {
    randomUUID?(): string;
    getRandomValues?<T extends Uint8Array>(array: T): T;
  };
}

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

/** Milliseconds from a monotonic clock (`performance.now()`: browsers, Node, React Native), else `Date.now()`. */
export function monotonicNow(): number {
  return typeof host.performance?.now === 'function' ? host.performance.now() : Date.now();
}

/**
 * A random client id (UUID v4 form, matching the protocol's clientIdSchema). Uses the Web Crypto
 * API when present (browsers, Node >= 19); React Native without a crypto polyfill falls back to
 * Math.random, which is fine for an opaque identifier that is not a secret.
 */
export function randomClientId(): string {
  const uuid = host.crypto?.randomUUID?.();
  if (uuid) return uuid;
  const bytes = new Uint8Array(16);
  if (host.crypto?.getRandomValues) host.crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
