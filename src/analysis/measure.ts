// The measuring loop of one batch gate: every `interval` for `duration`, each
// check's query over the new pods (and over the old ones, for comparisons and
// for the chart), judged as it goes. A threshold check that already failed
// more often than it may ends the loop at once.
import { setTimeout as wait } from 'node:timers/promises';
import {
  type AnalysisCheck,
  type CheckResult,
  type CheckSeries,
  expandQuery,
  judgeComparison,
  judgeThreshold,
  type Measurement,
  overallVerdict,
  type QueryScope,
  type Verdict,
} from '../domain/analysis.ts';
import type { Setting } from '../domain/plan.ts';
import type { MetricsSource } from './prometheus.ts';

export interface MeasureInput {
  checks: Setting<AnalysisCheck>[];
  scope: QueryScope;
  source: MetricsSource;
  intervalMs: number;
  durationMs: number;
  /** Pods still on the old version: none left means nothing to compare with. */
  oldPods: number;
  signal?: AbortSignal;
}

export interface MeasureResult {
  verdict: Verdict;
  results: CheckResult[];
  series: Record<string, CheckSeries>;
  startedAt: number;
  endedAt: number;
}

/** Waits `ms`, or less when `signal` aborts (an abort ends the wait; it is not an error here). */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return wait(ms, undefined, signal ? { signal } : {}).catch(() => undefined);
}

export async function measureBatch(input: MeasureInput): Promise<MeasureResult> {
  const { checks, scope, source } = input;
  const startedAt = Date.now();
  const rounds = Math.max(1, Math.floor(input.durationMs / input.intervalMs));
  const series: Record<string, CheckSeries> = {};
  for (const c of checks)
    series[c.value.name] = { at: [], new: [], ...(input.oldPods > 0 ? { old: [] } : {}) };
  const early: CheckResult[] = [];
  for (let round = 0; round < rounds && early.length === 0; round++) {
    // The first measurement after one interval: the rate windows need the new pods' first scrapes.
    await sleep(input.intervalMs, input.signal);
    if (input.signal?.aborted) break;
    const at = Date.now();
    await Promise.all(
      checks.map(async ({ value: c }) => {
        const s = series[c.name] as CheckSeries;
        const [n, o] = await Promise.all([
          source.instant(expandQuery(c.query, scope, 'new'), at),
          s.old ? source.instant(expandQuery(c.query, scope, 'old'), at) : Promise.resolve(undefined),
        ]);
        s.at.push(at);
        s.new.push(n);
        if (s.old) s.old.push(o as Measurement);
      }),
    );
    for (const { value: c, source: layer } of checks) {
      if (c.compare) continue;
      const r = judgeThreshold(c, layer, series[c.name] as CheckSeries, false);
      if (r) early.push(r);
    }
  }
  const results =
    early.length > 0
      ? early
      : checks.map(({ value: c, source: layer }) => {
          const s = series[c.name] as CheckSeries;
          if (!c.compare) return judgeThreshold(c, layer, s, true) as CheckResult;
          if (input.oldPods === 0)
            return {
              check: c.name,
              source: layer,
              verdict: 'pass' as const,
              detail: `${c.name}: skipped, no old pods left to compare with (earlier batches compared)`,
            };
          return judgeComparison(c, layer, s);
        });
  return { verdict: overallVerdict(results), results, series, startedAt, endedAt: Date.now() };
}
