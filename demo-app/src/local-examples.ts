/**
 * The device's labelled examples (IndexedDB, never uploaded) and the SDK data source built from
 * them: every 5th example is held out for the local tests of new global models.
 */
import { ArrayDataSource } from '@flock/client-sdk';
import { ExampleStore, toUnitPixels, type LabelledExample } from './example-store.js';

function oneHot(label: number): Float32Array {
  const row = new Float32Array(10);
  row[label] = 1;
  return row;
}

export class LocalExamples {
  /** What the SDK trains and tests on; rebuilt whenever the examples change. */
  readonly dataSource = new ArrayDataSource({ train: { xs: [], ys: [] } });

  private constructor(
    private readonly store: ExampleStore,
    private examples: LabelledExample[],
  ) {
    this.refresh();
  }

  static async open(): Promise<LocalExamples> {
    const store = await ExampleStore.open();
    return new LocalExamples(store, await store.all());
  }

  get all(): readonly LabelledExample[] {
    return this.examples;
  }

  get drawnCount(): number {
    return this.examples.filter((example) => example.source === 'drawn').length;
  }

  async add(added: LabelledExample[]): Promise<void> {
    await this.store.add(added);
    this.examples = this.examples.concat(added);
    this.refresh();
  }

  async clear(): Promise<void> {
    await this.store.clear();
    this.examples = [];
    this.refresh();
  }

  private refresh(): void {
    const split = ArrayDataSource.fromExamples(
      this.examples.map((example) => toUnitPixels(example.pixels)),
      this.examples.map((example) => oneHot(example.label)),
      { testFraction: 0.2 },
    );
    this.dataSource.replace({ train: split.trainingData() ?? { xs: [], ys: [] }, test: split.testData() });
  }
}
