/**
 * Learning curves of simulations as a self-contained SVG: test accuracy and test loss by round, one
 * line per run, side by side. Vega-Lite describes the chart; vega renders it headless (no canvas,
 * no browser) to SVG.
 */
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** One run's curve; `loss` is optional (older stored results have accuracy only). */
export interface CurveSeries {
  label: string;
  points: readonly { round: number; accuracy: number; loss?: number | null }[];
}

export interface CurveChartOptions {
  title?: string;
  /** Target test accuracy (0-1), drawn as a dashed line. */
  target?: number | null;
  /** Bottom of the accuracy axis in percent (lower points are clipped); default: from the data. */
  yMin?: number;
}

interface Datum {
  run: string;
  round: number;
  value: number;
}

const PANEL = { width: 420, height: 300 };

/** A view inside the top-level hconcat, and one layer of a layered view (vega-lite's own types). */
type Panel = Extract<TopLevelSpec, { hconcat: unknown }>['hconcat'][number];
type Layer = Extract<Panel, { layer: unknown }>['layer'][number];

/** The Vega-Lite specification (exported for tests and for anyone who wants to restyle it). */
export function learningCurvesSpec(series: readonly CurveSeries[], options: CurveChartOptions = {}): TopLevelSpec {
  const accuracy: Datum[] = series.flatMap(({ label, points }) => points.map((p) => ({ run: label, round: p.round, value: p.accuracy * 100 })));
  const loss: Datum[] = series.flatMap(({ label, points }) =>
    points.flatMap((p) => (typeof p.loss === 'number' && Number.isFinite(p.loss) ? [{ run: label, round: p.round, value: p.loss }] : [])),
  );
  const target = options.target != null ? options.target * 100 : null;
  const lowest = Math.min(...accuracy.map((d) => d.value), target ?? 100);
  const yMin = Math.max(0, Math.floor((options.yMin ?? (Number.isFinite(lowest) ? lowest : 0)) / 10) * 10);
  const several = series.length > 1;
  // One series: no legend (the title names it), and points mark each round when there are few.
  const color = { field: 'run', type: 'nominal', title: null, scale: { domain: series.map((s) => s.label) }, legend: several ? {} : null } as const;
  const points = !several && accuracy.length <= 60;
  const x = { field: 'round', type: 'quantitative', title: 'round', axis: { tickMinStep: 1 } } as const;

  const targetLayers: Layer[] =
    target !== null && target >= yMin
      ? [
          {
            data: { values: [{ target }] },
            layer: [
              { mark: { type: 'rule', color: '#d62728', strokeDash: [6, 4] }, encoding: { y: { field: 'target', type: 'quantitative' } } },
              {
                mark: { type: 'text', color: '#d62728', align: 'right', dy: -8, x: 'width' },
                encoding: { y: { field: 'target', type: 'quantitative' }, text: { value: `target ${target.toFixed(1)}%` } },
              },
            ],
          },
        ]
      : [];
  const accuracyPanel: Panel = {
    ...PANEL,
    layer: [
      {
        data: { values: accuracy },
        mark: { type: 'line', point: points, clip: true },
        encoding: { x, y: { field: 'value', type: 'quantitative', title: 'test accuracy (%)', scale: { domain: [yMin, 100] } }, color },
      },
      ...targetLayers,
    ],
  };
  const lossPanel: Panel = {
    ...PANEL,
    data: { values: loss },
    mark: { type: 'line', point: points },
    encoding: { x, y: { field: 'value', type: 'quantitative', title: 'test loss', scale: { zero: false } }, color },
  };
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: options.title ?? 'Global model on the test set',
    background: 'white',
    config: { font: 'sans-serif' },
    hconcat: loss.length > 0 ? [accuracyPanel, lossPanel] : [accuracyPanel],
    resolve: { scale: { color: 'shared' } },
  };
  return spec;
}

/** The chart as an SVG document. */
export async function learningCurvesSvg(series: readonly CurveSeries[], options: CurveChartOptions = {}): Promise<string> {
  const view = new View(parse(compile(learningCurvesSpec(series, options)).spec), { renderer: 'none' });
  try {
    return `${await view.toSVG()}\n`;
  } finally {
    view.finalize();
  }
}
