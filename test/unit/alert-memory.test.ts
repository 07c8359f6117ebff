// The memory chart of an OOM alert: a real PNG (vega-lite + resvg), the
// memory line in the series colour and the limit as the threshold line; and
// the Kubernetes quantities the limit is read from.
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { SERIES_COLOURS } from '../../src/analysis/charts.ts';
import { drawMemoryChart, limitBytes } from '../../src/watch/alerter.ts';
import { pixelsOf } from '../support/png.ts';

describe('OOM alert memory chart', () => {
  const t0 = Date.UTC(2026, 11, 2, 4, 0);
  const at = Array.from({ length: 30 }, (_, i) => t0 + i * 10_000);
  // climbing to the 48 MiB limit, as before a kill
  const bytes = at.map((_, i) => (8 + i * 1.3) * 2 ** 20);

  it('draws memory in use and the limit', async () => {
    const png = PNG.sync.read(await drawMemoryChart('Memory of payments app', at, bytes, 48 * 2 ** 20));
    expect(png.width).toBeGreaterThan(300);
    expect(pixelsOf(png, SERIES_COLOURS.new)).toBeGreaterThan(200);
    expect(pixelsOf(png, SERIES_COLOURS.threshold)).toBeGreaterThan(100);
  });

  it('draws no limit line when the container has none', async () => {
    const png = PNG.sync.read(await drawMemoryChart('Memory of payments app', at, bytes, undefined));
    expect(pixelsOf(png, SERIES_COLOURS.new)).toBeGreaterThan(200);
    expect(pixelsOf(png, SERIES_COLOURS.threshold)).toBe(0);
  });

  it('reads memory limits as Kubernetes writes them', () => {
    expect(limitBytes('48Mi')).toBe(48 * 2 ** 20);
    expect(limitBytes('1Gi')).toBe(2 ** 30);
    expect(limitBytes('500M')).toBe(500e6);
    expect(limitBytes('123456')).toBe(123456);
    expect(limitBytes('1.5Gi')).toBe(1.5 * 2 ** 30);
    expect(limitBytes(undefined)).toBeUndefined();
    expect(limitBytes('lots')).toBeUndefined();
  });
});
