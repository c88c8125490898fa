import { ArrayDataSource, FederatedClient, manualConditions, MemoryModelStore, type FederatedClientOptions, type FlockClientError } from '@flock/client-sdk';

/** An eligible SDK client with one example of `inputSize` values (enough to connect and be selected), over WebSocket. */
export interface WatchedClient {
  client: FederatedClient;
  /** Every `error` event it emitted (refusals included), in order. */
  errors: FlockClientError[];
  /** Resolves at its first welcome. */
  welcomed: Promise<unknown>;
}

/**
 * For tests of refusals the SDK must come back from (a full address, a busy coordinator, an expired
 * device token): the client with its errors recorded and its first welcome awaited, set up before
 * `start()` so nothing is missed. `options` must give the coordinator's URL and a credential.
 */
export function watchedClient(options: Partial<FederatedClientOptions> & Pick<FederatedClientOptions, 'serverUrl'>, inputSize = 784): WatchedClient {
  const client = new FederatedClient({
    dataSource: ArrayDataSource.fromExamples([new Array(inputSize).fill(0)], [0]),
    conditions: Object.values(manualConditions('yes')),
    store: new MemoryModelStore(),
    socketOptions: { transports: ['websocket'] },
    ...options,
  });
  const errors: FlockClientError[] = [];
  client.on('error', (error) => errors.push(error));
  const welcomed = new Promise((resolve) => client.once('connected', resolve));
  return { client, errors, welcomed };
}
