/** What SDK clients in integration tests share: their test bed, their local MNIST slice and transports that record what they send. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io } from 'socket.io-client';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { ArrayDataSource, type FederatedClient, type FederatedClientOptions, type FlockSocket } from '@flock/client-sdk';
import { ClientEvent, decodeUploadBody } from '@flock/client-sdk/protocol';
import { readMnist } from '../../src/datasets/mnist.js';
import { startTestCoordinator, type TestCoordinator } from './coordinator.js';
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
 * The transports of a FederatedClient that hand every message it sends to `onOutgoing`: its socket
 * (each device connects from its own loopback address, as phones would: a few per address are
 * selected per round) and its HTTP uploads, each recorded as the `round:update` message it stands
 * for (upload-endpoint.ts), its bytes as an ArrayBuffer, so that tests read what crossed the wire
 * whichever way it went.
 */
export function recordingTransport(onOutgoing: (event: string, args: unknown[]) => void): Pick<FederatedClientOptions, 'socketFactory' | 'fetch'> {
  return {
    socketFactory: (url, options) => {
      const socket = io(url, { ...options, localAddress: nextLoopbackAddress() } as typeof options) as FlockSocket;
      socket.onAnyOutgoing((event: string, ...args: unknown[]) => onOutgoing(event, args));
      return socket;
    },
    fetch(input, init) {
      if (init?.body instanceof Uint8Array) {
        const { meta, data } = decodeUploadBody(init.body);
        const upload = meta as { delta: object };
        onOutgoing(ClientEvent.update, [{ ...upload, delta: { ...upload.delta, data: data.slice().buffer } }]);
      }
      return fetch(input, init);
    },
  };
}

/** A real coordinator and MNIST for one SDK integration test file, with the clean-up every such file needs. */
export interface SdkTestBed {
  readonly coordinator: TestCoordinator;
  readonly mnist: Mnist;
  /** Disposed after the test that made it. */
  track(client: FederatedClient): FederatedClient;
  /** Disposes a tracked client now (a device that stops, to be restarted from its store). */
  dispose(client: FederatedClient): Promise<void>;
  /** A fresh directory, removed after the file's tests. */
  tempDir(prefix: string): string;
}

/**
 * Registers the hooks (call at a test file's top level): before all, a coordinator and the first
 * `mnistCount` MNIST training images; after each test, its clients disposed and every device gone;
 * after all, the coordinator closed and the temp dirs removed.
 */
export function sdkTestBed(mnistCount: number): SdkTestBed {
  let coordinator: TestCoordinator | undefined;
  let mnist: Mnist | undefined;
  let running: FederatedClient[] = [];
  const tempDirs: string[] = [];
  beforeAll(async () => {
    coordinator = await startTestCoordinator();
    mnist = await readMnist('train', { start: 0, count: mnistCount });
  });
  afterEach(async () => {
    await Promise.all(running.map((client) => client.dispose()));
    running = [];
    await coordinator?.devicesLeft(10_000);
  });
  afterAll(async () => {
    await coordinator?.dispose();
    tempDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
  });
  return {
    get coordinator() {
      if (!coordinator) throw new Error('the coordinator starts in beforeAll');
      return coordinator;
    },
    get mnist() {
      if (!mnist) throw new Error('MNIST is read in beforeAll');
      return mnist;
    },
    track(client) {
      running.push(client);
      return client;
    },
    async dispose(client) {
      running = running.filter((tracked) => tracked !== client);
      await client.dispose();
    },
    tempDir(prefix) {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      tempDirs.push(dir);
      return dir;
    },
  };
}
