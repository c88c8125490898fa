import { describe, expect, it } from 'vitest';
import {
  distinctLabels,
  localTestIndices,
  mulberry32,
  partitionData,
  partitionDirichlet,
  partitionIid,
  partitionShards,
  sampleDirichlet,
} from '../../src/simulation/partition.js';
import { learningCurvesSvg, roundsToCsv, type RoundRow } from '../../src/simulation/report.js';

/** 60,000 labels, 6,000 of each digit, in a shuffled order (like MNIST's training split). */
function syntheticLabels(count = 60_000, classes = 10, seed = 42): Uint8Array {
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) labels[i] = i % classes;
  const random = mulberry32(seed);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [labels[i], labels[j]] = [labels[j]!, labels[i]!];
  }
  return labels;
}

const labels = syntheticLabels();

function expectDisjoint(parts: Int32Array[], total: number): void {
  const seen = new Uint8Array(total);
  const problems: string[] = [];
  for (const part of parts) {
    for (const index of part) {
      if (index < 0 || index >= total) problems.push(`index ${index} out of range`);
      else if (seen[index]) problems.push(`index ${index} given twice`);
      seen[index] = 1;
    }
  }
  expect(problems.slice(0, 5)).toEqual([]);
}

function same(a: Int32Array[], b: Int32Array[]): boolean {
  return a.length === b.length && a.every((part, k) => part.length === b[k]!.length && part.every((v, i) => v === b[k]![i]));
}

describe('IID partition', () => {
  it('gives each of 100 clients 600 distinct examples covering the whole set', () => {
    const parts = partitionIid(labels, { clients: 100, examplesPerClient: 600, seed: 1 });
    expect(parts).toHaveLength(100);
    for (const part of parts) expect(part.length).toBe(600);
    expectDisjoint(parts, labels.length);
    // IID: every client sees (nearly) every digit.
    const distinct = parts.map((part) => distinctLabels(labels, part));
    expect(Math.min(...distinct)).toBe(10);
  });

  it('is reproducible by seed and uses a subset when asked for fewer examples', () => {
    const a = partitionIid(labels, { clients: 10, examplesPerClient: 300, seed: 7 });
    const b = partitionIid(labels, { clients: 10, examplesPerClient: 300, seed: 7 });
    const c = partitionIid(labels, { clients: 10, examplesPerClient: 300, seed: 8 });
    expect(same(a, b)).toBe(true);
    expect(same(a, c)).toBe(false);
    expect(a.map((p) => p.length)).toEqual(new Array(10).fill(300));
    expectDisjoint(a, labels.length);
  });

  it('refuses more examples than the dataset has', () => {
    expect(() => partitionIid(labels, { clients: 101, examplesPerClient: 600, seed: 1 })).toThrow(RangeError);
  });
});

describe('pathological non-IID partition (shards)', () => {
  it('gives each client 2 shards of 300 and so at most 2 labels', () => {
    const parts = partitionShards(labels, { clients: 100, examplesPerClient: 600, seed: 1 });
    expect(parts).toHaveLength(100);
    for (const part of parts) expect(part.length).toBe(600);
    expectDisjoint(parts, labels.length);
    const distinct = parts.map((part) => distinctLabels(labels, part));
    expect(Math.max(...distinct)).toBeLessThanOrEqual(2);
    // With 6,000 examples per digit and shards of 300, every shard holds exactly one digit; a
    // client gets two different digits unless both its shards share one.
    expect(distinct.filter((n) => n === 2).length).toBeGreaterThan(50);
    // Each 300-example half of a client is a single digit.
    for (const part of parts) {
      expect(distinctLabels(labels, part.subarray(0, 300))).toBe(1);
      expect(distinctLabels(labels, part.subarray(300))).toBe(1);
    }
  });

  it('is reproducible by seed', () => {
    const options = { clients: 100, examplesPerClient: 600, seed: 3 };
    expect(same(partitionShards(labels, options), partitionShards(labels, options))).toBe(true);
    expect(same(partitionShards(labels, options), partitionShards(labels, { ...options, seed: 4 }))).toBe(false);
  });

  it('supports other sizes and shard counts', () => {
    const parts = partitionShards(labels, { clients: 10, examplesPerClient: 300, seed: 1, shardsPerClient: 3 });
    expect(parts.map((p) => p.length)).toEqual(new Array(10).fill(300));
    expectDisjoint(parts, labels.length);
    for (const part of parts) expect(distinctLabels(labels, part)).toBeLessThanOrEqual(3 + 2); // shard boundaries may straddle digits
    expect(() => partitionShards(labels, { clients: 10, examplesPerClient: 301, seed: 1 })).toThrow(/multiple/);
  });
});

describe('Dirichlet partition', () => {
  it('is reproducible by seed, disjoint, and uses clients x examplesPerClient examples', () => {
    const options = { clients: 100, examplesPerClient: 600, seed: 5, alpha: 0.5 };
    const a = partitionDirichlet(labels, options);
    const b = partitionDirichlet(labels, options);
    expect(same(a, b)).toBe(true);
    expect(same(a, partitionDirichlet(labels, { ...options, seed: 6 }))).toBe(false);
    expectDisjoint(a, labels.length);
    expect(a.reduce((n, p) => n + p.length, 0)).toBe(60_000);
    expect(Math.min(...a.map((p) => p.length))).toBeGreaterThanOrEqual(10);
  });

  it('skews labels more for small alpha than for large alpha', () => {
    const meanDistinct = (alpha: number): number => {
      const parts = partitionData('dirichlet', labels, { clients: 50, examplesPerClient: 400, seed: 9, alpha });
      // labels holding at least 5 % of the client's examples
      const major = parts.map((part) => {
        const counts = new Array<number>(10).fill(0);
        for (const i of part) counts[labels[i]!]!++;
        return counts.filter((c) => c >= 0.05 * part.length).length;
      });
      return major.reduce((s, n) => s + n, 0) / major.length;
    };
    const skewed = meanDistinct(0.1);
    const mild = meanDistinct(100);
    expect(skewed).toBeLessThan(5);
    expect(mild).toBeGreaterThan(9);
  });

  it('draws Dirichlet vectors that sum to 1', () => {
    const random = mulberry32(1);
    for (const alpha of [0.05, 0.5, 1, 10]) {
      const p = sampleDirichlet(20, alpha, random);
      expect(p.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 9);
      for (const v of p) expect(v).toBeGreaterThanOrEqual(0);
    }
  });
});

describe('local test sets', () => {
  it('draw from the pool only labels the client holds', () => {
    const pool = syntheticLabels(10_000, 10, 3);
    const [client] = partitionShards(labels, { clients: 100, examplesPerClient: 600, seed: 1 });
    const own = new Set(Array.from(client!, (i) => labels[i]!));
    const test = localTestIndices(labels, client!, pool, 50, 1);
    expect(test.length).toBe(50);
    for (const i of test) expect(own.has(pool[i]!)).toBe(true);
    expect(Array.from(localTestIndices(labels, client!, pool, 50, 1))).toEqual(Array.from(test));
  });
});

describe('simulation output', () => {
  const row: RoundRow = {
    round: 1,
    status: 'committed',
    version: 2,
    accuracy: 0.9,
    loss: 0.3,
    clients: 10,
    accepted: 10,
    rejected: 0,
    dropped: 0,
    poisoned: 0,
    updateBound: 3.5,
    clipped: 4,
    clamped: 0,
    updateNorm: 1.25,
    trainLoss: null,
    bytes: 7_968_400,
    bytesUp: 1_992_340,
    bytesDown: 796_840,
    seconds: 2.5,
    evalSeconds: 0.25,
    elapsed: 3,
    selectionMs: 12,
    reportingMs: 2300,
    commitMs: 15,
    validationMs: 4,
    aggregationMs: 2,
    clientDownloadMs: 3,
    clientTrainingMs: 2100,
    clientEncodeMs: 5,
    clientUploadMs: 20,
  };
  it('writes CSV with a header and one line per round', () => {
    const csv = roundsToCsv([row, { ...row, round: 2, accuracy: 0.95 }])
      .trim()
      .split('\n');
    expect(csv[0]).toBe(
      'round,status,version,accuracy,loss,clients,accepted,rejected,dropped,poisoned,updateBound,clipped,clamped,updateNorm,trainLoss,bytes,bytesUp,bytesDown,seconds,evalSeconds,elapsed,' +
        'selectionMs,reportingMs,commitMs,validationMs,aggregationMs,clientDownloadMs,clientTrainingMs,clientEncodeMs,clientUploadMs',
    );
    expect(csv[1]).toBe(
      '1,committed,2,0.900000,0.300000,10,10,0,0,0,3.500000,4,0,1.250000,,7968400,1992340,796840,2.500000,0.250000,3,12,2300,15,4,2,3,2100,5,20',
    );
    expect(csv).toHaveLength(3);
  });
  it('quotes CSV fields that need it (RFC 4180)', () => {
    const csv = roundsToCsv([{ ...row, status: 'failed: "quorum", 3 of 5' }]);
    expect(csv.split('\n')[1]).toMatch(/^1,"failed: ""quorum"", 3 of 5",2,/);
  });
  /** Lines drawn in the accuracy panel and in the loss panel (vega names each mark group). */
  const lines = (svg: string) => ({
    accuracy: svg.match(/class="mark-line role-mark concat_0_[a-z0-9_]*marks"/g)?.length ?? 0,
    loss: svg.match(/class="mark-line role-mark concat_1_[a-z0-9_]*marks"/g)?.length ?? 0,
  });
  it('plots test accuracy and test loss by round (Vega-Lite, rendered to SVG), with the target', async () => {
    const points = [
      { round: 0, accuracy: 0.1, loss: 2.3 },
      { round: 1, accuracy: 0.9, loss: 0.4 },
    ];
    const svg = await learningCurvesSvg([{ label: 'fedavg', points }], { title: 'a < b', target: 0.97 });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(lines(svg)).toEqual({ accuracy: 1, loss: 1 });
    for (const text of ['a &lt; b', 'target 97.0%', 'test accuracy (%)', 'test loss', 'round']) expect(svg).toContain(`>${text}</text>`);
    expect(svg).not.toContain('role-legend'); // one series: no legend
  });
  it('draws one line per series with a legend when comparing runs, and no loss panel without losses', async () => {
    const series = [
      {
        label: 'fedavg',
        points: [
          { round: 1, accuracy: 0.5, loss: 1 },
          { round: 2, accuracy: 0.8, loss: 0.5 },
        ],
      },
      {
        label: 'fed<yogi>',
        points: [
          { round: 1, accuracy: 0.6, loss: 0.9 },
          { round: 2, accuracy: 0.9, loss: 0.3 },
        ],
      },
    ];
    const svg = await learningCurvesSvg(series);
    expect(lines(svg)).toEqual({ accuracy: 2, loss: 2 });
    expect(svg).toContain('>fedavg</text>');
    expect(svg).toContain('>fed&lt;yogi&gt;</text>');
    const accuracyOnly = await learningCurvesSvg(
      series.map(({ label, points }) => ({ label, points: points.map(({ round, accuracy }) => ({ round, accuracy })) })),
    );
    expect(lines(accuracyOnly)).toEqual({ accuracy: 2, loss: 0 });
    expect(accuracyOnly).not.toContain('>test loss</text>');
  });
});
