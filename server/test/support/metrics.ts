import type { TestCoordinator } from './coordinator.js';

/** The coordinator's Prometheus exposition, read over HTTP with the operator token. */
export async function metrics(coordinator: TestCoordinator): Promise<string> {
  return (await coordinator.api<string>('/metrics')).body;
}

/** The value of one sample in Prometheus' text format (0 when absent). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line[name.length] === '_') continue;
    const [series, value] = [line.slice(0, line.lastIndexOf(' ')), line.slice(line.lastIndexOf(' ') + 1)];
    if (wanted.every((label) => series.includes(label))) return Number(value);
  }
  return 0;
}
