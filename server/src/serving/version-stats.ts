import type { ServingVersionStats } from '../contract/index.js';

/** Bins of the confidence histogram: [0, 0.1), ..., [0.9, 1]. */
export const CONFIDENCE_BINS = 10;

/**
 * One served version's live statistics, O(1) per predicted row: predicted classes, the confidence
 * histogram, labelled feedback and shadow comparisons with the previous version.
 */
export class VersionStats {
  predictions = 0;
  readonly classCounts: number[] = [];
  readonly confidenceHistogram: number[] = new Array<number>(CONFIDENCE_BINS).fill(0);
  feedback = 0;
  feedbackCorrect = 0;
  shadowCompared = 0;
  shadowDisagreed = 0;

  constructor(readonly version: number) {}

  /** A predicted row of a classifier: its argmax and top probability. */
  observe(topClass: number, confidence: number): void {
    this.predictions++;
    while (this.classCounts.length <= topClass) this.classCounts.push(0);
    this.classCounts[topClass]!++;
    const bin = Math.min(CONFIDENCE_BINS - 1, Math.max(0, Math.floor(confidence * CONFIDENCE_BINS)));
    this.confidenceHistogram[bin]!++;
  }

  observeFeedback(correct: boolean): void {
    this.feedback++;
    if (correct) this.feedbackCorrect++;
  }

  observeShadow(agreed: boolean): void {
    this.shadowCompared++;
    if (!agreed) this.shadowDisagreed++;
  }

  get accuracy(): number | null {
    return this.feedback === 0 ? null : this.feedbackCorrect / this.feedback;
  }

  get disagreement(): number | null {
    return this.shadowCompared === 0 ? null : this.shadowDisagreed / this.shadowCompared;
  }

  snapshot(): Omit<ServingVersionStats, 'deviceEvaluations' | 'deviceAccuracy'> {
    return {
      version: this.version,
      predictions: this.predictions,
      classCounts: [...this.classCounts],
      confidenceHistogram: [...this.confidenceHistogram],
      feedback: this.feedback,
      feedbackCorrect: this.feedbackCorrect,
      shadowCompared: this.shadowCompared,
      shadowDisagreed: this.shadowDisagreed,
    };
  }
}

/** Top class and probability of each row of a classifier's output (`classes` values per row). */
export function argmaxRows(output: Float32Array, rows: number): { classes: Int32Array; confidences: Float32Array } {
  const width = output.length / rows;
  const classes = new Int32Array(rows);
  const confidences = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    let bestValue = -Infinity;
    for (let c = 0; c < width; c++) {
      const value = output[r * width + c]!;
      if (value > bestValue) {
        bestValue = value;
        best = c;
      }
    }
    classes[r] = best;
    confidences[r] = bestValue;
  }
  return { classes, confidences };
}
