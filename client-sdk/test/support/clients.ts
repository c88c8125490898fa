/** Builds FederatedClients wired to a TestCoordinator, with manual conditions and synthetic data. */
import {
  ArrayDataSource,
  FederatedClient,
  FlockClientError,
  manualConditions,
  MemoryModelStore,
  type ClientStatus,
  type FederatedClientOptions,
  type ManualCondition,
  type ConditionKind,
} from '../../src/index.js';
import { syntheticRows, type Rows } from './fixtures.js';
import { TEST_TOKEN, type TestCoordinator } from './test-coordinator.js';

export interface TestClient {
  client: FederatedClient;
  conditions: Record<ConditionKind, ManualCondition>;
  rows: Rows;
  dataSource: ArrayDataSource;
  errors: FlockClientError[];
  statuses: ClientStatus[];
}

export function testClient(
  coordinator: Pick<TestCoordinator, 'url'>,
  options: Partial<FederatedClientOptions> & { examples?: number; seed?: number; bias?: number | null } = {},
): TestClient {
  const { examples = 200, seed = 1, bias = null, ...overrides } = options;
  const conditions = manualConditions('yes');
  const rows = syntheticRows(examples, seed, bias);
  const dataSource = ArrayDataSource.fromExamples(rows.xs, rows.labels, { testFraction: 0.2 });
  const client = new FederatedClient({
    serverUrl: coordinator.url,
    clientToken: TEST_TOKEN,
    dataSource,
    conditions: Object.values(conditions),
    store: new MemoryModelStore(),
    socketOptions: { reconnectionDelay: 100, reconnectionDelayMax: 400, transports: ['websocket'] },
    ...overrides,
  });
  const errors: FlockClientError[] = [];
  const statuses: ClientStatus[] = [];
  client.on('error', (error) => errors.push(error));
  client.on('statusChange', ({ status }) => statuses.push(status));
  return { client, conditions, rows, dataSource, errors, statuses };
}

/** Polls until `predicate` holds (for state that settles asynchronously). */
export async function until(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
