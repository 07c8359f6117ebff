// Benchmark: the time analysis adds to a batch, against the batch alone, on
// the local eu-west cluster with the real Prometheus, same run, side by side.
//
//   Each run rolls hello-app (with /metrics) between v1 builds in two batches
//   (1 pod, then 100%), through jobs/deploy.ts and the real kube runners,
//   under a steady load from the load generator:
//     alone    — readiness gate only (no judge);
//     analysis — the same plus the analysis judge: two checks (error rate
//                threshold, p95 latency Mann-Whitney new vs old) measured
//                every 2 s for 8 s, the batch's PNG chart, the summary chart.
//   Reported: seconds per batch (from one batch event to the next / the end)
//   and what the analysis adds beyond its configured duration (queries,
//   charts, judging) — the part Ferry could make faster; the duration itself
//   is the plan's choice.
//
//   node bench/analysis.ts   → bench/results/analysis.json and analysis.md
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deployJob } from '../jobs/deploy.ts';
import { analysisJudge } from '../src/analysis/judge.ts';
import { generateLoad } from '../src/analysis/load.ts';
import type { FerryConfig } from '../src/domain/config.ts';
import type { BuiltImage, StepRunners } from '../src/domain/ports.ts';
import { kubeClients } from '../src/kube/client.ts';
import { createRuntime, jobContext } from '../src/runtime.ts';
import { ensureInfra, newNamespace } from '../test/support/infra.ts';
import { deployableRelease, kubeTestConfig, TEST_APP, testRunners } from '../test/support/kube.ts';
import { metricsImages } from '../test/support/metrics-images.ts';
import { ensurePrometheus } from '../test/support/prometheus.ts';

const here = dirname(fileURLToPath(import.meta.url));
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const INTERVAL_S = 2;
// Long enough for Prometheus to find and scrape a new pod (discovery loop + scrape + a 10 s rate window).
const DURATION_S = 16;

const info = await ensureInfra(['redis', 'registries', 'images', 'k8s']);
const prometheus = await ensurePrometheus();
const { v1, v4 } = await metricsImages(['eu-west']);
const ns = await newNamespace('eu-west', 'bench-analysis');

function config(): FerryConfig {
  const c = kubeTestConfig(ns.name, { batches: [{ size: '1' }, { size: '100%' }], pause: '1s' });
  c.metrics = { prometheus, timeout: '3s' };
  (c.environments.kt as FerryConfig['environments'][string]).plan.analysis = {
    interval: `${INTERVAL_S}s`,
    duration: `${DURATION_S}s`,
    checks: {
      'error-rate': {
        query:
          '(sum(rate(http_requests_total{$selector,code=~"5.."}[10s])) or vector(0)) / sum(rate(http_requests_total{$selector}[10s]))',
        max: 0.5,
        worseWhen: 'higher',
        failureLimit: 1,
      },
      'p95-latency': {
        query:
          'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{$selector}[10s])))',
        compare: { test: 'mann-whitney', alpha: 0.001, minSamples: 3 },
        worseWhen: 'higher',
        failureLimit: 0,
      },
    },
  };
  return c;
}

const rt = createRuntime({
  config: config(),
  redisUrl: info.redis.url,
  prefix: `ba${randomUUID().slice(0, 8)}`,
  name: 'bench-analysis',
});
const plain = testRunners(rt.config()).runners;
const judged: StepRunners = { ...plain, judge: analysisJudge(rt.config()) };

/** Runs whose gate held (inconclusive) and were continued by the bench: not in the figures. */
let heldRuns = 0;

/** Seconds of each batch: from its batch event to the next one, the last to the job's end. */
async function rollout(version: string, image: BuiltImage, runners: StepRunners): Promise<number[]> {
  const release = await deployableRelease(rt, version, image);
  const t0 = Date.now();
  // An inconclusive gate (too few measurements on a busy machine) holds for a person: the bench is
  // that person, says Continue at once, and leaves the run out of the figures.
  let held = false;
  const watching = setInterval(async () => {
    const r = await rt.releases.get(release.id);
    if (r?.hold && r.awaitingPromotion) {
      held = true;
      await rt.releases.apply(release.id, { type: 'promote', by: 'bench' }, 'bench');
    }
  }, 500);
  const out = await deployJob(
    { releaseId: release.id, step: 'deploy' },
    jobContext(rt, runners, 200),
    new AbortController().signal,
  ).finally(() => clearInterval(watching));
  const end = Date.now();
  if (held) heldRuns++;
  if (!out.startsWith('deployed')) throw new Error(`rollout ${version}: ${out}`);
  await rt.lifecycle.report(release.id, { type: 'step', to: 'verifying' });
  await rt.lifecycle.report(release.id, { type: 'succeed' });
  const audit = await rt.releases.audit(release.id);
  const marks = audit.filter((a) => a.event === 'batch' && a.at >= t0).map((a) => a.at);
  return held ? [] : marks.map((m, i) => ((marks[i + 1] ?? end) - m) / 1000);
}

const load = new AbortController();
// Old pods first, so every judged batch has old pods to compare with.
await rollout('v4', v4, plain);
const loadDone = generateLoad({
  core: kubeClients(rt.config(), 'eu-west').core,
  namespace: ns.name,
  name: TEST_APP,
  rate: 10,
  maxMs: 30 * 60_000,
  maxRequests: 50_000,
  signal: load.signal,
});
const rows: { run: number; mode: 'alone' | 'analysis'; batches: number[] }[] = [];
try {
  for (let run = 1; run <= RUNS; run++) {
    // Alternate images so every rollout changes the pods; alone and analysis take turns.
    rows.push({ run, mode: 'alone', batches: await rollout('v1', v1, plain) });
    await rollout('v4', v4, plain);
    rows.push({ run, mode: 'analysis', batches: await rollout('v1', v1, judged) });
    await rollout('v4', v4, plain);
  }
} finally {
  load.abort();
  await loadDone;
  await rt.close();
  await ns.remove().catch(() => {});
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const per = (mode: 'alone' | 'analysis', i: number) =>
  mean(rows.filter((r) => r.mode === mode && r.batches.length > 0).map((r) => r.batches[i] ?? 0));
const summary = [0, 1].map((i) => ({
  batch: i + 1,
  aloneS: per('alone', i),
  analysisS: per('analysis', i),
  addedS: per('analysis', i) - per('alone', i),
  beyondDurationS: per('analysis', i) - per('alone', i) - DURATION_S,
}));
writeFileSync(
  join(here, 'results', 'analysis.json'),
  JSON.stringify(
    {
      at: new Date().toISOString(),
      cpus: cpus().length,
      load: loadavg(),
      intervalS: INTERVAL_S,
      durationS: DURATION_S,
      rows,
      heldRuns,
      summary,
    },
    null,
    2,
  ),
);
writeFileSync(
  join(here, 'results', 'analysis.md'),
  [
    '## Analysis at the batch gate',
    '',
    `eu-west, 4 replicas, batches 1 pod then 100%, ${RUNS} runs each, analysis of 2 checks every ${INTERVAL_S}s for ${DURATION_S}s, charts on. Load ${loadavg()[0]?.toFixed(1)}.${heldRuns ? ` ${heldRuns} judged run(s) held as inconclusive (too few measurements) and are left out.` : ''}`,
    '',
    '| batch | alone (s) | with analysis (s) | added (s) | added beyond the analysis duration (s) |',
    '| --- | --- | --- | --- | --- |',
    ...summary.map(
      (s) =>
        `| ${s.batch} | ${s.aloneS.toFixed(1)} | ${s.analysisS.toFixed(1)} | ${s.addedS.toFixed(1)} | ${s.beyondDurationS.toFixed(1)} |`,
    ),
  ].join('\n'),
);
console.log(JSON.stringify(summary));
process.exit(0);
