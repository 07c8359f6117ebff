import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { renderChart, SERIES_COLOURS } from '../../src/analysis/charts.ts';
import {
  type AnalysisCheck,
  afterVerdict,
  expandQuery,
  judgeComparison,
  judgeThreshold,
  type Measurement,
  mannWhitneyGreater,
} from '../../src/domain/analysis.ts';
import { configSchema, type FerryConfig } from '../../src/domain/config.ts';
import { explainPlan, planRelease } from '../../src/domain/plan.ts';
import { exampleConfig } from '../support/config.ts';
import { pixelsOf } from '../support/png.ts';

const scope = { app: 'pay', env: 'prod', region: 'eu-west', namespace: 'pay', version: 'v"2' };
const v = (...xs: number[]): Measurement[] => xs.map((value) => ({ value }));

describe('queries', () => {
  it('selects the new pods by version and the old ones by any other, escaping label values', () => {
    const q = 'sum(rate(http_requests_total{$selector,code=~"5.."}[1m])) # $app';
    expect(expandQuery(q, scope, 'new')).toBe(
      'sum(rate(http_requests_total{app="pay",env="prod",region="eu-west",namespace="pay",version="v\\"2",code=~"5.."}[1m])) # pay',
    );
    expect(expandQuery(q, scope, 'old')).toContain('version!="v\\"2"');
  });
});

const errorRate: AnalysisCheck = {
  name: 'error-rate',
  query: 'q',
  max: 0.1,
  worseWhen: 'higher',
  failureLimit: 1,
};

describe('threshold checks', () => {
  it('fail as soon as more measurements than allowed breach, before the end', () => {
    expect(
      judgeThreshold(errorRate, 'environment prod', { at: [1, 2], new: v(0.2, 0.05) }, false),
    ).toBeNull();
    const r = judgeThreshold(errorRate, 'environment prod', { at: [1, 2, 3], new: v(0.2, 0.05, 0.3) }, false);
    expect(r).toMatchObject({ verdict: 'fail', source: 'environment prod' });
    expect(r?.detail).toMatch(/2 of 3 measurements outside ≤ 0.1 \(worst 0.3, 1 allowed\)/);
  });
  it('pass at the end when within bounds', () => {
    expect(judgeThreshold(errorRate, 'x', { at: [1, 2, 3], new: v(0.01, 0.2, 0) }, true)?.verdict).toBe(
      'pass',
    );
  });
  it('are inconclusive, never a pass, when Prometheus gave no numbers', () => {
    const down = { missing: 'Prometheus at http://127.0.0.1:1 did not answer: fetch failed' };
    const r = judgeThreshold(errorRate, 'x', { at: [1, 2, 3], new: [down, down, { value: 0 }] }, true);
    expect(r?.verdict).toBe('inconclusive');
    expect(r?.detail).toMatch(/1 of 3 measurements had a value \(Prometheus .* did not answer/);
  });
});

describe('new against old', () => {
  const latency = (compare: AnalysisCheck['compare']): AnalysisCheck => ({
    name: 'p95',
    query: 'q',
    compare,
    worseWhen: 'higher',
    failureLimit: 0,
  });
  it('Mann-Whitney: a clearly slower new version fails, the same one passes', () => {
    expect(mannWhitneyGreater([5, 6, 7, 8, 9, 10], [1, 2, 3, 1, 2, 3]).p).toBeLessThan(0.01);
    expect(mannWhitneyGreater([1, 2, 3, 4], [1, 2, 3, 4]).p).toBeGreaterThan(0.3);
    const mw = latency({ test: 'mann-whitney', alpha: 0.05, minSamples: 4 });
    const slow = { at: [1, 2, 3, 4, 5], new: v(50, 52, 49, 51, 50), old: v(10, 11, 9, 12, 10) };
    expect(judgeComparison(mw, 'x', slow).verdict).toBe('fail');
    const fast = { at: [1, 2, 3, 4, 5], new: slow.old, old: slow.new };
    expect(judgeComparison(mw, 'x', fast).verdict).toBe('pass');
    // Lower is worse (throughput): the same numbers judge the other way.
    expect(judgeComparison({ ...mw, worseWhen: 'lower' }, 'x', fast).verdict).toBe('fail');
  });
  it('ratio: with a margin, and too few samples is inconclusive', () => {
    const ratio = latency({ test: 'ratio', maxRatio: 1.5, margin: 0.01, minSamples: 3 });
    expect(judgeComparison(ratio, 'x', { at: [1, 2, 3], new: v(0, 0.005, 0), old: v(0, 0, 0) }).verdict).toBe(
      'pass',
    );
    expect(judgeComparison(ratio, 'x', { at: [1, 2, 3], new: v(2, 2, 2), old: v(1, 1, 1) }).verdict).toBe(
      'fail',
    );
    const few = judgeComparison(ratio, 'x', { at: [1, 2], new: v(2, 2), old: v(1, 1) });
    expect(few.verdict).toBe('inconclusive');
    expect(few.detail).toMatch(/3 of each needed/);
  });
});

describe('what a verdict does', () => {
  it('rolls back a failure, holds under wait, and always holds an inconclusive one', () => {
    expect(afterVerdict('pass', 'rollback')).toBe('continue');
    expect(afterVerdict('fail', 'rollback')).toBe('rollback');
    expect(afterVerdict('fail', 'wait')).toBe('hold');
    expect(afterVerdict('inconclusive', 'rollback')).toBe('hold');
  });
});

describe('analysis steps in the plan', () => {
  function configWithAnalysis(): FerryConfig {
    const c = exampleConfig();
    const prod = c.environments.prod as FerryConfig['environments'][string];
    const parsed = configSchema.parse({
      ...c,
      environments: {
        ...c.environments,
        prod: {
          ...prod,
          plan: {
            ...prod.plan,
            analysis: {
              interval: '15s',
              checks: {
                'error-rate': { query: 'a{$selector}', max: 0.01 },
                'p95-latency': { query: 'b{$selector}', compare: { test: 'mann-whitney' } },
              },
              webhooks: {
                'change-board': {
                  kind: 'confirm-promotion',
                  url: 'https://cab.example/ok',
                  secretEnv: 'CAB_KEY',
                },
              },
            },
          },
        },
      },
      factors: {
        ...c.factors,
        degraded: {
          ...(c.factors.degraded ?? { description: 'd', effects: {} }),
          effects: {
            ...(c.factors.degraded?.effects ?? {}),
            analysis: {
              duration: '5m',
              checks: { 'error-rate': { query: 'a{$selector}', max: 0.2 }, 'p95-latency': null },
            },
          },
        },
      },
    });
    return parsed;
  }

  it('sets each step by name, the later layer replacing or removing it, and explains each with its layer', () => {
    const config = configWithAnalysis();
    const prod = planRelease({ app: 'payments', version: 'v2', environment: 'prod', factors: [] }, config);
    const degraded = planRelease(
      { app: 'payments', version: 'v2', environment: 'prod', factors: ['degraded'] },
      config,
    );
    if (!prod.ok || !degraded.ok) throw new Error('plan failed');
    expect(prod.plan.analysis?.checks.map((c) => [c.value.name, c.value.max, c.source])).toEqual([
      ['error-rate', 0.01, 'environment prod'],
      ['p95-latency', undefined, 'environment prod'],
    ]);
    expect(degraded.plan.analysis?.checks.map((c) => [c.value.name, c.value.max, c.source])).toEqual([
      ['error-rate', 0.2, 'factor degraded'],
    ]);
    expect(degraded.plan.analysis?.duration).toEqual({ value: '5m', source: 'factor degraded' });
    expect(degraded.plan.analysis?.interval).toEqual({ value: '15s', source: 'environment prod' });
    const lines = explainPlan(prod.plan).join('\n');
    expect(lines).toMatch(/analysis: measured every 15s \(environment prod\) for 1m \(default\)/);
    expect(lines).toMatch(
      /check error-rate: new pods ≤ 0.01, 0 failed measurements allowed \(environment prod\)/,
    );
    expect(lines).toMatch(
      /check p95-latency: new vs old pods, higher is worse, Mann-Whitney at α=0.05, ≥ 5 samples each \(environment prod\)/,
    );
    expect(lines).toMatch(
      /webhook change-board: confirm-promotion https:\/\/cab.example\/ok, timeout 10s, 2 retries, HMAC-signed \(environment prod\)/,
    );
    expect(explainPlan(degraded.plan).join('\n')).toMatch(
      /check error-rate: new pods ≤ 0.2.*\(factor degraded\)/,
    );
  });

  it('refuses a check without a threshold or a comparison', () => {
    const c = exampleConfig();
    const prod = c.environments.prod as FerryConfig['environments'][string];
    const r = configSchema.safeParse({
      ...c,
      environments: {
        ...c.environments,
        prod: { ...prod, plan: { analysis: { checks: { x: { query: 'up' } } } } },
      },
    });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toMatch(/needs a threshold \(max or min\) or a comparison/);
  });
});

describe('charts', () => {
  const at = [0, 2000, 4000, 6000, 8000];
  it('draw new and old pods in their colours, and the threshold, as a real PNG', async () => {
    const bytes = await renderChart(
      'hello v4 · eu-west batch 1/2',
      [
        {
          title: 'error-rate',
          series: { at, new: v(0.2, 0.18, 0.22, 0.2, 0.21), old: v(0, 0.01, 0, 0, 0.01) },
          max: 0.1,
        },
        {
          title: 'p95-latency',
          series: { at, new: v(0.05, 0.05, 0.049, 0.05, 0.05), old: v(0.005, 0.005, 0.004, 0.005, 0.005) },
        },
      ],
      0,
    );
    const png = PNG.sync.read(bytes);
    expect(png.width).toBeGreaterThan(500);
    expect(png.height).toBeGreaterThan(300);
    expect(pixelsOf(png, SERIES_COLOURS.new)).toBeGreaterThan(200);
    expect(pixelsOf(png, SERIES_COLOURS.old)).toBeGreaterThan(200);
    expect(pixelsOf(png, SERIES_COLOURS.threshold)).toBeGreaterThan(100);
  }, 60_000);
  it('show no old series when there are no old pods, and no threshold line without a threshold', async () => {
    const png = PNG.sync.read(
      await renderChart('only new', [{ title: 'p95', series: { at, new: v(1, 2, 3, 2, 1) } }], 0),
    );
    expect(pixelsOf(png, SERIES_COLOURS.new)).toBeGreaterThan(200);
    expect(pixelsOf(png, SERIES_COLOURS.old)).toBe(0);
    expect(pixelsOf(png, SERIES_COLOURS.threshold)).toBe(0);
  }, 60_000);
});
