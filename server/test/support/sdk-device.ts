/** What SDK clients in integration tests share: their local MNIST slice and a socket that records what they send. */
import { io } from 'socket.io-client';
import { ArrayDataSource, type FederatedClientOptions, type FlockSocket } from '@flock/client-sdk';
import type { readMnist } from '../../src/datasets/mnist.js';
import { nextLoopbackAddress } from './protocol-client.js';

type Mnist = Awaited<ReturnType<typeof readMnist>>;

/**
 * Device k's disjoint slice of `mnist`: `train` rows of 784 pixels with their labels, then `test`
 * held-out ones; `relabel` changes every label the device sees (a label-flipping device).
 */
export function mnistSlice(mnist: Mnist, k: number, train: number, test = 0, relabel: (label: number) => number = (label) => label): ArrayDataSource {
  const rows = (start: number, count: number) => Array.from({ length: count }, (_, i) => mnist.images.subarray((start + i) * 784, (start + i + 1) * 784));
  const labels = (start: number, count: number) => Array.from(mnist.labels.subarray(start, start + count), relabel);
  const start = k * (train + test);
  return new ArrayDataSource({
    train: { xs: rows(start, train), ys: labels(start, train) },
    ...(test > 0 ? { test: { xs: rows(start + train, test), ys: labels(start + train, test) } } : {}),
  });
}

/**
 * A socket factory for FederatedClient: each device connects from its own loopback address, as
 * phones would (a few per address are selected per round), and every message it emits is handed
 * to `onOutgoing`.
 */
export function recordingSocketFactory(onOutgoing: (event: string, args: unknown[]) => void): NonNullable<FederatedClientOptions['socketFactory']> {
  return (url, options) => {
    const socket = io(url, { ...options, localAddress: nextLoopbackAddress() } as typeof options) as FlockSocket;
    socket.onAnyOutgoing((event: string, ...args: unknown[]) => onOutgoing(event, args));
    return socket;
  };
}
