// Charts for the release thread: one panel per analysis check (error rate,
// p95 latency…), the new pods against the old ones over the batch, with the
// check's thresholds drawn as dashed lines. vega-lite compiles the spec,
// vega renders SVG without a browser, resvg turns it into a PNG (its binary
// ships in the npm package). Colours are fixed, so a reader (and the pixel
// test) can tell the series apart: new is orange, old is blue, thresholds red.
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { type CheckSeries, valuesOf } from '../domain/analysis.ts';

export const SERIES_COLOURS = { new: '#e8590c', old: '#1c7ed6', threshold: '#e03131' } as const;

export interface ChartPanel {
  title: string;
  series: CheckSeries;
  max?: number;
  min?: number;
}

interface Point {
  panel: string;
  t: number;
  track: 'new' | 'old';
  value: number;
}

function points(panel: ChartPanel, t0: number): Point[] {
  const out: Point[] = [];
  const s = panel.series;
  s.new.forEach((m, i) => {
    if ('value' in m)
      out.push({ panel: panel.title, t: ((s.at[i] as number) - t0) / 1000, track: 'new', value: m.value });
  });
  s.old?.forEach((m, i) => {
    if ('value' in m)
      out.push({ panel: panel.title, t: ((s.at[i] as number) - t0) / 1000, track: 'old', value: m.value });
  });
  return out;
}

/** The vega-lite spec of a chart: panels stacked, time in seconds since `t0` on x. */
export function chartSpec(title: string, panels: ChartPanel[], t0: number): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, anchor: 'start', fontSize: 14 },
    background: 'white',
    config: { font: 'DejaVu Sans', view: { stroke: '#dddddd' } },
    vconcat: panels.map((p) => {
      const thresholds = [p.max, p.min].filter((v): v is number => v !== undefined).map((v) => ({ v }));
      const vals = [
        ...valuesOf(p.series.new),
        ...valuesOf(p.series.old ?? []),
        ...thresholds.map((x) => x.v),
      ];
      const top = vals.length ? Math.max(...vals) : 1;
      // Only the tracks with data get a legend entry (no old pods: no blue anywhere).
      const tracks = (['new', 'old'] as const).filter(
        (t) => t === 'new' || valuesOf(p.series.old ?? []).length > 0,
      );
      return {
        width: 520,
        height: 150,
        title: { text: p.title, anchor: 'start', fontSize: 12 },
        layer: [
          {
            data: { values: points(p, t0) },
            mark: { type: 'line', point: true, strokeWidth: 3 },
            encoding: {
              x: { field: 't', type: 'quantitative', title: 'seconds into the batch' },
              y: {
                field: 'value',
                type: 'quantitative',
                title: null,
                scale: { domain: [0, top * 1.1 || 1] },
              },
              color: {
                field: 'track',
                type: 'nominal',
                title: 'pods',
                scale: { domain: tracks, range: tracks.map((t) => SERIES_COLOURS[t]) },
              },
            },
          },
          ...(thresholds.length
            ? [
                {
                  data: { values: thresholds },
                  mark: {
                    type: 'rule' as const,
                    strokeDash: [6, 4],
                    strokeWidth: 2,
                    color: SERIES_COLOURS.threshold,
                  },
                  encoding: { y: { field: 'v', type: 'quantitative' as const } },
                },
              ]
            : []),
        ],
      };
    }),
  } as TopLevelSpec;
}

/** Renders a chart to PNG bytes. */
export async function renderChart(title: string, panels: ChartPanel[], t0?: number): Promise<Buffer> {
  const start =
    t0 ?? Math.min(...panels.flatMap((p) => p.series.at), Number.isFinite(Date.now()) ? Date.now() : 0);
  const { spec } = compile(chartSpec(title, panels, start));
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  // Loaded when a chart is drawn: a process that never draws one does not load the native addon.
  const { Resvg } = await import('@resvg/resvg-js');
  const png = new Resvg(svg, {
    background: 'white',
    fitTo: { mode: 'zoom', value: 1.5 },
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  }).render();
  return png.asPng();
}
