// Analysis gates on the real clusters and a real Prometheus: hello-app v4
// (20% of its requests answer 500, 40 ms slower) against v1, with the load
// generator sending requests to the app's pods the whole time. Driven
// through jobs/deploy.ts with the real kube runners and the real judge;
// pod images are read with kubectl, not with Ferry's code.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deployJob } from '../../jobs/deploy.ts';
import { SERIES_COLOURS } from '../../src/analysis/charts.ts';
import { analysisJudge } from '../../src/analysis/judge.ts';
import { generateLoad, type LoadReport } from '../../src/analysis/load.ts';
import type { FerryConfig } from '../../src/domain/config.ts';
import type { BuiltImage, Outbound, StepRunners } from '../../src/domain/ports.ts';
import type { Release } from '../../src/domain/release.ts';
import { kubeClients } from '../../src/kube/client.ts';
import { createRuntime, jobContext, type Runtime } from '../../src/runtime.ts';
import { ensureInfra, loadInfo, newNamespace, type TestNamespace } from '../support/infra.ts';
import { countPods, deployableRelease, kubeTestConfig, TEST_APP, testRunners } from '../support/kube.ts';
import { METRICS_REPO, metricsImages } from '../support/metrics-images.ts';
import { pixelsOf } from '../support/png.ts';
import { ensurePrometheus } from '../support/prometheus.ts';

let redisUrl: string;
let prometheus: string;
let v1: BuiltImage;
let v4: BuiltImage;
let ns: TestNamespace;
const runtimes: Runtime[] = [];
const load = new AbortController();
let loadDone: Promise<LoadReport> | undefined;

beforeAll(async () => {
  const info = await ensureInfra(['redis', 'registries', 'images', 'k8s']);
  redisUrl = info.redis.url;
  prometheus = await ensurePrometheus();
  ({ v1, v4 } = await metricsImages(['eu-west']));
  ns = await newNamespace('eu-west', 'analysis');
}, 1_800_000);

afterAll(async () => {
  load.abort();
  await loadDone;
  for (const rt of runtimes) await rt.close();
  await ns?.remove().catch(() => {});
});

/** The test app with analysis checks: error rate ≤ 10% on the new pods, and p95 latency new vs old. */
function analysisConfig(onFailure: 'rollback' | 'wait', webhooks: Record<string, unknown> = {}): FerryConfig {
  const c = kubeTestConfig(ns.name, { batches: [{ size: '1' }, { size: '100%' }], pause: '1s', onFailure });
  c.metrics = { prometheus, timeout: '3s' };
  const env = c.environments.kt as FerryConfig['environments'][string];
  env.plan.analysis = {
    interval: '2s',
    duration: '16s',
    checks: {
      'error-rate': {
        query:
          '(sum(rate(http_requests_total{$selector,code=~"5.."}[10s])) or vector(0)) / sum(rate(http_requests_total{$selector}[10s]))',
        max: 0.1,
        worseWhen: 'higher',
        failureLimit: 1,
      },
      'p95-latency': {
        query:
          'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{$selector}[10s])))',
        compare: { test: 'mann-whitney', alpha: 0.05, minSamples: 4 },
        worseWhen: 'higher',
        failureLimit: 0,
      },
    },
    webhooks: webhooks as never,
  };
  return c;
}

function runtime(config: FerryConfig): Runtime {
  const rt = createRuntime({
    config,
    redisUrl,
    prefix: `an${randomUUID().slice(0, 8)}`,
    name: 'analysis-test',
  });
  runtimes.push(rt);
  return rt;
}

function judged(config: FerryConfig): StepRunners {
  const { runners } = testRunners(config);
  return { ...runners, judge: analysisJudge(config, { webhookBackoffMs: 50 }) };
}

async function deploy(rt: Runtime, runners: StepRunners, version: string, image: BuiltImage) {
  const release = await deployableRelease(rt, version, image);
  const result = await deployJob(
    { releaseId: release.id, step: 'deploy' },
    jobContext(rt, runners, 200),
    new AbortController().signal,
  ).catch((e: Error) => e);
  const after = (await rt.releases.get(release.id)) as Release;
  if (typeof result === 'string' && after.state === 'deploying') {
    await rt.lifecycle.report(release.id, { type: 'step', to: 'verifying' });
    await rt.lifecycle.report(release.id, { type: 'succeed' });
  }
  return { release: after, result };
}

async function replies(rt: Runtime, releaseId: string) {
  const jobs = await rt.announcer.queue.getJobs(
    ['waiting', 'completed', 'failed', 'delayed', 'prioritized'],
    0,
    -1,
    true,
  );
  return jobs
    .map((j) => j.data as Outbound)
    .filter(
      (o): o is Extract<Outbound, { kind: 'reply' }> => o.kind === 'reply' && o.releaseId === releaseId,
    );
}

/** The region's pull reference of a metrics image (the rollout pins it by digest). */
function regionRef(region: 'eu-west', img: BuiltImage): string {
  return `${loadInfo().registries.regions[region]}/${METRICS_REPO}@${img.digest}`;
}

describe('analysis gates (eu-west, Prometheus)', () => {
  it('runs the bad version on the old pods first, under load, with nothing judging it', async () => {
    const rt = runtime(analysisConfig('rollback'));
    const { runners } = testRunners(rt.config());
    const base = await deploy(rt, runners, 'v4', v4);
    expect(base.result).toBe('deployed to eu-west');
    expect((await countPods('eu-west', ns.name)).byImage).toEqual({ [regionRef('eu-west', v4)]: 4 });
    loadDone = generateLoad({
      core: kubeClients(rt.config(), 'eu-west').core,
      namespace: ns.name,
      name: TEST_APP,
      rate: 12,
      maxRequests: 20_000,
      maxMs: 20 * 60_000,
      signal: load.signal,
    });
    // The pipeline works end to end before anything is judged: Prometheus has the pods' requests.
    const q = `sum(rate(http_requests_total{namespace="${ns.name}"}[10s]))`;
    let rate = 0;
    for (let i = 0; i < 120 && !(rate > 0); i++) {
      const r = await fetch(`${prometheus}/api/v1/query?query=${encodeURIComponent(q)}`).then(
        (x) => x.json() as Promise<{ data: { result: { value: [number, string] }[] } }>,
      );
      rate = Number(r.data.result[0]?.value[1] ?? 0);
      if (!(rate > 0)) await new Promise((res) => setTimeout(res, 500));
    }
    expect(rate).toBeGreaterThan(0);
  }, 600_000);

  it('passes the good version: fewer errors, lower latency than the old pods', async () => {
    const rt = runtime(analysisConfig('rollback'));
    const { release, result } = await deploy(rt, judged(rt.config()), 'v1', v1);
    const thread = await replies(rt, release.id);
    expect(result, thread.map((r) => `${r.text}\n${r.snippet ?? ''}`).join('\n')).toBe('deployed to eu-west');
    expect((await countPods('eu-west', ns.name)).byImage).toEqual({ [regionRef('eu-west', v1)]: 4 });
    expect(thread.map((r) => r.text).join('\n')).toMatch(/batch 1\/2 analysis: pass/);
    // The batch chart: a real PNG with both series' colours.
    const chart = thread.find((r) => r.file?.name.endsWith('batch-1.png'));
    const png = PNG.sync.read(Buffer.from(chart?.file?.bytes ?? '', 'base64'));
    expect(png.width).toBeGreaterThan(300);
    expect(pixelsOf(png, SERIES_COLOURS.new)).toBeGreaterThan(0);
    expect(pixelsOf(png, SERIES_COLOURS.old)).toBeGreaterThan(0);
    expect(thread.some((r) => r.file?.name.endsWith('summary.png'))).toBe(true);
  }, 600_000);

  it('fails the bad version at the first batch and rolls it back', async () => {
    const rt = runtime(analysisConfig('rollback'));
    const { release, result } = await deploy(rt, judged(rt.config()), 'v4', v4);
    const thread = await replies(rt, release.id);
    expect(result).toBeInstanceOf(Error);
    expect((result as Error).message).toMatch(/eu-west batch 1\/2: analysis fail: error-rate/);
    expect(release.state).toBe('rolled-back');
    expect(thread.map((r) => r.text).join('\n')).toMatch(/batch 1\/2 analysis: fail/);
    expect((await countPods('eu-west', ns.name)).byImage).toEqual({ [regionRef('eu-west', v1)]: 4 });
  }, 600_000);

  it('under degraded (wait), holds the bad version for a person with Continue and Roll back', async () => {
    const rt = runtime(analysisConfig('wait'));
    const release = await deployableRelease(rt, 'v4', v4);
    const job = deployJob(
      { releaseId: release.id, step: 'deploy' },
      jobContext(rt, judged(rt.config()), 200),
      new AbortController().signal,
    ).catch((e: Error) => e);
    // Wait for the hold itself (stored), not for time.
    let held: Release | undefined;
    for (let i = 0; i < 600 && !held; i++) {
      const r = (await rt.releases.get(release.id)) as Release;
      if (r.awaitingPromotion && r.hold) held = r;
      else await new Promise((res) => setTimeout(res, 250));
    }
    expect(held?.hold).toMatch(/analysis fail: error-rate/);
    expect(held?.batch).toMatchObject({ index: 1, total: 2 });
    const { buttonsFor } = await import('../../src/chat/slack/render.ts');
    expect(buttonsFor(held as Release)).toEqual(['promote', 'rollback', 'abort', 'logs']);
    // One new pod, three old: it did not go on, and it did not roll back by itself.
    expect((await countPods('eu-west', ns.name)).byImage).toEqual({
      [regionRef('eu-west', v4)]: 1,
      [regionRef('eu-west', v1)]: 3,
    });
    // A person rolls back: the waiting job stops, the rollback job puts the pods back.
    await rt.releases.apply(
      release.id,
      { type: 'rollback-start', by: 'U_ALICE', reason: 'bad metrics' },
      'U_ALICE',
    );
    expect(await job).toMatch(/^stopped/);
    const { runners } = testRunners(rt.config());
    const rollout = await runners.rollout(held as Release, 'eu-west', v4, {
      say: async () => {},
      signal: new AbortController().signal,
    });
    await rollout.prepare();
    await rollout.rollback();
    expect((await countPods('eu-west', ns.name)).byImage).toEqual({ [regionRef('eu-west', v1)]: 4 });
  }, 600_000);

  it('stops the release when a pre-rollout webhook says no, with its reason in the thread', async () => {
    const bodies: { sig: string | undefined; body: string }[] = [];
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        bodies.push({ sig: req.headers['x-ferry-signature'] as string | undefined, body });
        res.writeHead(409, { 'content-type': 'text/plain' });
        res.end('change freeze for payments until 18:00');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      const rt = runtime(
        analysisConfig('rollback', { freeze: { kind: 'pre-rollout', url, timeout: '2s', retries: 0 } }),
      );
      const { release, result } = await deploy(rt, judged(rt.config()), 'v4', v4);
      expect((result as Error).message).toMatch(
        /webhook freeze said no \(HTTP 409\): change freeze for payments/,
      );
      expect(release.state).toBe('failed');
      expect((await replies(rt, release.id)).map((r) => r.text).join('\n')).toMatch(
        /change freeze for payments/,
      );
      expect(JSON.parse(bodies[0]?.body ?? '{}')).toMatchObject({
        kind: 'pre-rollout',
        version: 'v4',
        region: 'eu-west',
      });
      // Nothing changed on the cluster.
      expect((await countPods('eu-west', ns.name)).byImage).toEqual({ [regionRef('eu-west', v1)]: 4 });
    } finally {
      server.close();
    }
  }, 600_000);
});
