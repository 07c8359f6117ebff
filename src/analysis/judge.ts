// The batch judge the deploy job calls at each gate (the BatchJudge port):
// runs the plan's analysis checks against Prometheus, posts the batch's chart
// to the thread, asks the confirm-promotion webhooks, and at the ends of a
// region's rollout the pre- and post-rollout webhooks and a summary chart.

import { type CheckResult, expandQuery, type QueryScope } from '../domain/analysis.ts';
import type { FerryConfig } from '../domain/config.ts';
import { durationMs } from '../domain/duration.ts';
import type { BatchJudge } from '../domain/ports.ts';
import type { Release } from '../domain/release.ts';
import { literal } from '../domain/text.ts';
import { appTarget } from '../kube/rollout.ts';
import type { ChartPanel } from './charts.ts';
import { measureBatch } from './measure.ts';
import { type MetricsSource, PrometheusClient } from './prometheus.ts';
import { callWebhook, type WebhookPayload } from './webhooks.ts';

/**
 * vega, vega-lite and resvg (some 250 modules) load with the first chart, not with the worker: most
 * workers never draw one between restarts. With the dashboard also loaded on first use
 * (src/queue/ops-server.ts), an idle worker at 9,000 apps went from 162 to 147 MiB resident.
 */
const charts = () => import('./charts.ts');

export interface JudgeOptions {
  /** Override the Prometheus of the config (tests, benches). */
  source?: MetricsSource;
  env?: NodeJS.ProcessEnv;
  /** Backoff between webhook attempts (default 500 ms, doubling). */
  webhookBackoffMs?: number;
  /** Charts on (default): off for benches that time the judgement alone. */
  charts?: boolean;
}

export function analysisJudge(
  config: FerryConfig | (() => FerryConfig),
  opts: JudgeOptions = {},
): BatchJudge {
  const cfg = typeof config === 'function' ? config : () => config;
  // When each region's rollout began, for the summary chart (a restarted job starts it again: the chart is shorter).
  const began = new Map<string, number>();
  const source = (): MetricsSource | undefined => {
    if (opts.source) return opts.source;
    const m = cfg().metrics;
    return m ? new PrometheusClient(m.prometheus, durationMs(m.timeout)) : undefined;
  };
  const scope = (release: Release, region: string): QueryScope => ({
    app: release.app,
    env: release.environment,
    region,
    namespace: appTarget(cfg(), release.app, release.environment, region).namespace,
    version: release.version,
  });
  const payload = (release: Release, region: string, kind: WebhookPayload['kind']): WebhookPayload => ({
    kind,
    releaseId: release.id,
    app: release.app,
    environment: release.environment,
    region,
    version: release.version,
  });
  const hooks = (release: Release, kind: WebhookPayload['kind']) =>
    (release.plan.analysis?.webhooks ?? []).filter((w) => w.value.kind === kind).map((w) => w.value);

  return {
    async beforeRollout(release, region, io) {
      began.set(`${release.id}/${region}`, Date.now());
      for (const hook of hooks(release, 'pre-rollout')) {
        const a = await callWebhook(hook, payload(release, region, 'pre-rollout'), {
          ...(opts.env ? { env: opts.env } : {}),
          ...(opts.webhookBackoffMs !== undefined ? { backoffMs: opts.webhookBackoffMs } : {}),
          signal: io.signal,
        });
        if (!a.ok) return { ok: false, reason: a.reason };
      }
      return { ok: true };
    },

    async judgeBatch(release, region, batch, io) {
      const analysis = release.plan.analysis;
      const checks = analysis?.checks ?? [];
      let results: CheckResult[] = [];
      let verdict: 'pass' | 'fail' | 'inconclusive' = 'pass';
      if (checks.length > 0 && analysis) {
        const src = source();
        if (!src) {
          return {
            verdict: 'inconclusive',
            reason: 'the plan has analysis checks but the config names no Prometheus (metrics.prometheus)',
          };
        }
        const m = await measureBatch({
          checks,
          scope: scope(release, region),
          source: src,
          intervalMs: durationMs(analysis.interval.value),
          durationMs: durationMs(analysis.duration.value),
          oldPods: batch.replicas - batch.pods,
          signal: io.signal,
        });
        results = m.results;
        verdict = m.verdict;
        const lines = results.map(
          (r) => `${r.verdict === 'pass' ? '✓' : r.verdict === 'fail' ? '✗' : '?'} ${r.detail} (${r.source})`,
        );
        const head = `${region} batch ${batch.index}/${batch.total} analysis: ${verdict}`;
        if (opts.charts !== false) {
          const panels: ChartPanel[] = checks.map(({ value: c }) => ({
            title: c.name,
            series: m.series[c.name] ?? { at: [], new: [] },
            ...(c.max !== undefined ? { max: c.max } : {}),
            ...(c.min !== undefined ? { min: c.min } : {}),
          }));
          // A chart that cannot be drawn never decides a batch: the thread gets the figures without it.
          const png = await charts()
            .then((c) => c.renderChart(`${release.app} ${release.version} · ${head}`, panels, m.startedAt))
            .catch(() => undefined);
          await io.say(literal(head), {
            snippet: lines.join('\n'),
            ...(png
              ? {
                  file: {
                    name: `${release.id}-${region}-batch-${batch.index}.png`,
                    text: `${head}: new pods (orange) against old (blue), thresholds dashed red`,
                    bytes: png.toString('base64'),
                  },
                }
              : {}),
          });
        } else {
          await io.say(literal(head), { snippet: lines.join('\n') });
        }
      }
      const failed = results.filter((r) => r.verdict !== 'pass').map((r) => r.detail);
      if (verdict !== 'pass') return { verdict, reason: `analysis ${verdict}: ${failed.join('; ')}` };
      for (const hook of hooks(release, 'confirm-promotion')) {
        const a = await callWebhook(
          hook,
          {
            ...payload(release, region, 'confirm-promotion'),
            batch,
            analysis: {
              verdict,
              checks: results.map(({ check, verdict: v, detail }) => ({ check, verdict: v, detail })),
            },
          },
          {
            ...(opts.env ? { env: opts.env } : {}),
            ...(opts.webhookBackoffMs !== undefined ? { backoffMs: opts.webhookBackoffMs } : {}),
            signal: io.signal,
          },
        );
        if (!a.ok) return { verdict: 'fail', reason: a.reason };
      }
      return { verdict: 'pass', reason: '' };
    },

    async afterRollout(release, region, io) {
      for (const hook of hooks(release, 'post-rollout')) {
        const a = await callWebhook(hook, payload(release, region, 'post-rollout'), {
          ...(opts.env ? { env: opts.env } : {}),
          ...(opts.webhookBackoffMs !== undefined ? { backoffMs: opts.webhookBackoffMs } : {}),
          signal: io.signal,
        });
        // After the last batch a no changes nothing already done: it is reported, not acted on.
        if (!a.ok) await io.say(`${region}: post-rollout ${literal(a.reason)}`);
      }
      const checks = release.plan.analysis?.checks ?? [];
      const src = source();
      if (!checks.length || !src || opts.charts === false) return;
      const start = began.get(`${release.id}/${region}`) ?? release.stateSince;
      const end = Date.now();
      const step = Math.max(1_000, Math.round((end - start) / 60));
      const sc = scope(release, region);
      const panels: ChartPanel[] = [];
      for (const { value: c } of checks) {
        const [n, o] = await Promise.all([
          src.range(expandQuery(c.query, sc, 'new'), start, end, step).catch(() => []),
          src.range(expandQuery(c.query, sc, 'old'), start, end, step).catch(() => []),
        ]);
        const at = [...new Set([...n, ...o].map((p) => p.at))].sort((a, b) => a - b);
        const byAt = (ps: { at: number; value: number }[]) => new Map(ps.map((p) => [p.at, p.value]));
        const nm = byAt(n);
        const om = byAt(o);
        panels.push({
          title: c.name,
          series: {
            at,
            new: at.map((t) => (nm.has(t) ? { value: nm.get(t) as number } : { missing: 'no data' })),
            old: at.map((t) => (om.has(t) ? { value: om.get(t) as number } : { missing: 'no data' })),
          },
          ...(c.max !== undefined ? { max: c.max } : {}),
          ...(c.min !== undefined ? { min: c.min } : {}),
        });
      }
      const title = `${release.app} ${release.version} · ${region} rollout summary`;
      const png = await charts()
        .then((c) => c.renderChart(title, panels, start))
        .catch(() => undefined);
      if (!png) return;
      await io.say(`${region}: rollout summary chart.`, {
        file: { name: `${release.id}-${region}-summary.png`, text: title, bytes: png.toString('base64') },
      });
    },
  };
}
