// The Kubernetes rollout against real clusters (infra/infra.sh: eu-west and
// us-east, real kubelets on containerd), driven through jobs/deploy.ts with
// the real kube runners. Pod counts are read with kubectl, not with Ferry's
// own code.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandPorts } from '../../commands/command.ts';
import { handleCommand } from '../../commands/handle.ts';
import type { JobContext } from '../../jobs/context.ts';
import { deployJob } from '../../jobs/deploy.ts';
import { finishJob } from '../../jobs/finish.ts';
import { type RollbackOperation, rollbackAppJob } from '../../jobs/rollback-app.ts';
import type { FerryConfig } from '../../src/domain/config.ts';
import type { BuiltImage, Outbound, StepRunners } from '../../src/domain/ports.ts';
import type { Release } from '../../src/domain/release.ts';
import { KubeRollbacks } from '../../src/kube/rollback-service.ts';
import { appTarget, KubeRollout, trackStatus } from '../../src/kube/rollout.ts';
import type { Operation } from '../../src/ports.ts';
import { clusterReleaseId, kubeRunners } from '../../src/runners/deploy.ts';
import { createRuntime, jobContext, type Runtime } from '../../src/runtime.ts';
import {
  ensureInfra,
  infra,
  kubectl,
  newNamespace,
  REPO_ROOT,
  run,
  type TestNamespace,
} from '../support/infra.ts';
import {
  countPods,
  deployableRelease,
  kubeTestConfig,
  type PodCount,
  regionRef,
  sampleImage,
  TEST_APP,
  tapRollout,
  testRunners,
} from '../support/kube.ts';

let redisUrl: string;
let v1: BuiltImage;
let v2: BuiltImage;
let v3: BuiltImage;
const namespaces: TestNamespace[] = [];
const runtimes: Runtime[] = [];
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  const info = await ensureInfra(['redis', 'registries', 'images', 'k8s']);
  redisUrl = info.redis.url;
  v1 = await sampleImage('v1');
  v2 = await sampleImage('v2');
  v3 = await sampleImage('v3');
}, 1_800_000);

afterAll(async () => {
  for (const c of cleanups) await c().catch(() => {});
  for (const rt of runtimes) await rt.close();
  for (const ns of namespaces) await ns.remove().catch(() => {});
});

async function namespace(prefix: string): Promise<string> {
  const ns = await newNamespace('eu-west', prefix);
  namespaces.push(ns);
  return ns.name;
}

function runtime(config: FerryConfig): Runtime {
  const rt = createRuntime({
    config,
    redisUrl,
    prefix: `kt${randomUUID().slice(0, 8)}`,
    name: 'deploy-test',
  });
  runtimes.push(rt);
  return rt;
}

/** Counts per image after each applyBatch, keyed by region. */
type Step = { region: string; batch: number; pods: number; count: PodCount };

function countingRunners(config: FerryConfig, ns: string, steps: Step[]) {
  return testRunners(config, (r, region) =>
    tapRollout(r, {
      afterApply: async (pods, batch) => {
        steps.push({ region, batch, pods, count: await countPods(region as 'eu-west', ns) });
      },
    }),
  );
}

async function deploy(
  rt: Runtime,
  runners: ReturnType<typeof testRunners>['runners'],
  version: string,
  image: BuiltImage,
  finish = true,
): Promise<{ release: Release; result: string | Error }> {
  const release = await deployableRelease(rt, version, image);
  const result = await deployJob(
    { releaseId: release.id, step: 'deploy' },
    jobContext(rt, runners, 200),
    new AbortController().signal,
  ).catch((e: Error) => e);
  // A rollout that went through ends the release, as the finish job would,
  // so the next one can take the app's lock.
  const after = (await rt.releases.get(release.id)) as Release;
  if (finish && typeof result === 'string' && after.state === 'deploying') {
    await rt.lifecycle.report(release.id, { type: 'step', to: 'verifying' });
    await rt.lifecycle.report(release.id, { type: 'succeed' });
  }
  return { release: after, result };
}

async function thread(rt: Runtime, releaseId: string): Promise<string[]> {
  const jobs = await rt.announcer.queue.getJobs(
    ['waiting', 'completed', 'failed', 'delayed', 'prioritized'],
    0,
    -1,
    true,
  );
  return jobs
    .map((j) => j.data as Outbound)
    .filter((o): o is Extract<Outbound, { kind: 'reply' }> => o.kind === 'reply' && o.releaseId === releaseId)
    .map((o) => o.text);
}

const only = (c: PodCount) => ({ byImage: c.byImage, terminating: c.terminating });

describe('rollout in exact batches (eu-west)', () => {
  let ns: string;
  let config: FerryConfig;
  let rt: Runtime;

  beforeAll(async () => {
    ns = await namespace('deploy');
    config = kubeTestConfig(ns);
    rt = runtime(config);
  });

  it('grows a new app and replaces it batch by batch, exactly, and kubectl agrees', async () => {
    const steps: Step[] = [];
    const { runners, kube } = countingRunners(config, ns, steps);
    const eu = (img: BuiltImage) => regionRef('eu-west', img);

    const a = await deploy(rt, runners, 'v1', v1);
    expect(a.result).toBe('deployed to eu-west');
    expect(steps.map((s) => only(s.count))).toEqual([
      { byImage: { [eu(v1)]: 1 }, terminating: 0 },
      { byImage: { [eu(v1)]: 2 }, terminating: 0 },
      { byImage: { [eu(v1)]: 4 }, terminating: 0 },
    ]);

    steps.length = 0;
    const b = await deploy(rt, runners, 'v2', v2);
    expect(b.result).toBe('deployed to eu-west');
    expect(steps.map((s) => [s.batch, s.pods])).toEqual([
      [1, 1],
      [2, 2],
      [3, 4],
    ]);
    expect(steps.map((s) => only(s.count))).toEqual([
      { byImage: { [eu(v2)]: 1, [eu(v1)]: 3 }, terminating: 0 },
      { byImage: { [eu(v2)]: 2, [eu(v1)]: 2 }, terminating: 0 },
      { byImage: { [eu(v2)]: 4 }, terminating: 0 },
    ]);
    // The pods really run the digest (imageID), and every one is Ready: verify agrees.
    const after = await countPods('eu-west', ns);
    expect(after.byImageID).toEqual({ [v2.digest]: 4 });
    expect(
      await kube.verify(b.release, 'eu-west', v2, {
        say: async () => {},
        signal: new AbortController().signal,
      }),
    ).toEqual({
      ok: true,
    });
    expect(b.release.batch).toMatchObject({ region: 'eu-west', index: 3, total: 3, pods: 4, replicas: 4 });
    expect(b.release.progress).toEqual({ 'eu-west': 3 });
    expect((await thread(rt, b.release.id)).join('\n')).toMatch(/all 4 pods on v2/);

    // Ferry's account (stable track, replicas) and kubectl's agree.
    const target = appTarget(config, TEST_APP, 'kt', 'eu-west');
    const st = await trackStatus(kube.clients('eu-west'), target);
    expect(st.stable).toBe(`${TEST_APP}-b`);
    const stable = st.stable as string;
    expect(st.replicas).toEqual({ [TEST_APP]: 0, [`${TEST_APP}-b`]: 4 });
    const rs = await kubectl('eu-west', [
      '-n',
      ns,
      'rollout',
      'status',
      `deployment/${st.stable}`,
      '--timeout=60s',
    ]);
    expect(rs).toMatch(/successfully rolled out/);
    const deploys = JSON.parse(await kubectl('eu-west', ['-n', ns, 'get', 'deploy', '-o', 'json'])) as {
      items: {
        metadata: { name: string; annotations: Record<string, string> };
        status: { readyReplicas?: number };
      }[];
    };
    const byName = Object.fromEntries(deploys.items.map((d) => [d.metadata.name, d]));
    expect(byName[stable]?.status.readyReplicas).toBe(4);
    expect(byName[stable]?.metadata.annotations['ferry.dev/release']).toBe(clusterReleaseId(b.release));
    expect(byName[stable]?.metadata.annotations['ferry.dev/role']).toBe('stable');
    expect(byName[TEST_APP]?.metadata.annotations['ferry.dev/role']).toBe('next');

    // Applying the last batch again changes nothing: same generations, same pods.
    const gens = deploys.items.map((d) => [
      d.metadata.name,
      (d.metadata as { generation?: number }).generation,
    ]);
    const again = new KubeRollout(
      kube.clients('eu-west'),
      config,
      {
        releaseId: clusterReleaseId(b.release),
        app: TEST_APP,
        environment: 'kt',
        version: 'v2',
        region: 'eu-west',
        image: v2,
      },
      { pollMs: 250 },
    );
    expect(await again.prepare()).toEqual({ replicas: 4, previousImage: eu(v1) });
    await again.applyBatch(4, 3);
    await again.applyBatch(4, 3);
    const deploys2 = JSON.parse(
      await kubectl('eu-west', ['-n', ns, 'get', 'deploy', '-o', 'json']),
    ) as typeof deploys;
    expect(
      deploys2.items.map((d) => [d.metadata.name, (d.metadata as { generation?: number }).generation]),
    ).toEqual(gens);
    expect((await countPods('eu-west', ns)).uids).toEqual(after.uids);
  });

  it('a failing readiness gate (v3) rolls the region back to v2, naming the pod and why', async () => {
    const gate = config.environments.kt?.plan.gate as { progressDeadline?: string };
    gate.progressDeadline = '20s';
    const steps: Step[] = [];
    const { runners } = countingRunners(config, ns, steps);
    const t0 = Date.now();
    const c = await deploy(rt, runners, 'v3', v3);
    gate.progressDeadline = '90s';
    expect(c.result).toBeInstanceOf(Error);
    // No dip: the v3 pod never became Ready, so all four v2 pods were kept beside it.
    expect(steps.map((s) => only(s.count))).toEqual([
      { byImage: { [regionRef('eu-west', v3)]: 1, [regionRef('eu-west', v2)]: 4 }, terminating: 0 },
    ]);
    expect(c.release.state).toBe('rolled-back');
    expect(c.release.error).toMatch(/eu-west batch 1\/3: pod hello-\S+ not Ready after 20s: /);
    expect(c.release.error).toMatch(/Readiness probe failed|Unhealthy|ContainersNotReady/);
    const now = await countPods('eu-west', ns);
    expect(only(now)).toEqual({ byImage: { [regionRef('eu-west', v2)]: 4 }, terminating: 0 });
    const said = (await thread(rt, c.release.id)).join('\n');
    expect(said).toMatch(/Rolling eu-west back/);
    expect(said).toMatch(/eu-west rolled back in/);
    expect(Date.now() - t0).toBeLessThan(120_000);
  });

  it('/release rollback redeploys the previous recorded digest at once, and a named version', async () => {
    const kube = kubeRunners(config, { pollMs: 250 });
    const rollbacks = new KubeRollbacks({
      config: () => config,
      versions: rt.versions,
      releases: rt.releases,
      clients: (r) => kube.clients(r),
      rollout: { pollMs: 250 },
    });
    // The bot's half: permission (domain policy) and the checks it can answer at once; then it queues.
    const queued: RollbackOperation[] = [];
    const ports = {
      config: () => config,
      rollbacks,
      operations: {
        enqueue: async (op: Operation, base: string) => {
          const id = `op-${base}-${queued.length}`;
          queued.push({ ...(op as Extract<Operation, { kind: 'rollback' }>), id });
          return id;
        },
      },
    } as unknown as CommandPorts;
    const alice = { userId: 'U_ALICE', channel: 'C' };
    const denied = await handleCommand(
      { kind: 'rollback', app: TEST_APP },
      { userId: 'U_ERIN', channel: 'C' },
      ports,
    );
    expect(denied.ok).toBe(false);
    expect(denied.text).toMatch(/may not roll back/);
    const unknown = await handleCommand({ kind: 'rollback', app: TEST_APP, version: 'v9' }, alice, ports);
    expect(unknown).toMatchObject({ ok: false });
    expect(unknown.text).toMatch(/v9 has no recorded image for kt; versions with one: .*v1/);
    expect(queued).toEqual([]);

    // The worker's half: the job takes the app's lock, redeploys, audits and posts the outcome.
    const posted: string[] = [];
    const ctx: JobContext = {
      ...jobContext(rt, kube as unknown as StepRunners),
      announcer: { announce: async (m: Outbound) => void posted.push('text' in m ? m.text : '') },
      operations: { rollback: rollbacks, sync: async () => ({ built: false, ok: false, targets: [] }) },
    };
    expect((await handleCommand({ kind: 'rollback', app: TEST_APP }, alice, ports)).ok).toBe(true);
    expect(await rollbackAppJob(queued[0] as RollbackOperation, ctx)).toBe('rolled back');
    expect(posted.at(-1)).toMatch(
      /^Rolled back hello in kt in [\d.]+\s?m?s, no build: eu-west → v1 \(4 pods/,
    );
    expect(only(await countPods('eu-west', ns))).toEqual({
      byImage: { [regionRef('eu-west', v1)]: 4 },
      terminating: 0,
    });
    const last = (await rt.versions.deploys(TEST_APP, 'kt', 'eu-west', 1))[0];
    expect(last).toMatchObject({ version: 'v1', digest: v1.digest });
    expect(last?.releaseId).toBe(queued[0]?.id);
    expect(await rt.releases.audit(queued[0]?.id as string)).toMatchObject([
      { actor: 'U_ALICE', event: 'rollback', to: 'succeeded' },
    ]);
    expect(await rt.releases.lockHolder(TEST_APP, 'kt')).toBeNull();

    expect((await handleCommand({ kind: 'rollback', app: TEST_APP, version: 'v2' }, alice, ports)).ok).toBe(
      true,
    );
    expect(await rollbackAppJob(queued[1] as RollbackOperation, ctx)).toBe('rolled back');
    expect(only(await countPods('eu-west', ns))).toEqual({
      byImage: { [regionRef('eu-west', v2)]: 4 },
      terminating: 0,
    });
  });

  it('a deploy worker killed mid-rollout (twice) resumes the same rollout: no duplicate or half batch', async () => {
    const c = kubeTestConfig(ns, { pause: '3s' });
    const rt2 = runtime(c);
    const release = await deployableRelease(rt2, 'v1', v1);
    const dir = mkdtempSync(join(tmpdir(), 'ferry-kt-'));
    const cfgFile = join(dir, 'config.json');
    writeFileSync(cfgFile, JSON.stringify(c));
    const eu = (img: BuiltImage) => regionRef('eu-west', img);

    // First worker: killed during the gate of batch 2 (after its apply completed).
    const first = await runChild(
      release.id,
      cfgFile,
      rt2.prefix as string,
      (e) => e.event === 'applied' && e.batch === 2,
    );
    expect(first.killedAt).toMatchObject({ event: 'applied', batch: 2 });
    const atKill = await countPods('eu-west', ns);
    expect(only(atKill)).toEqual({ byImage: { [eu(v1)]: 2, [eu(v2)]: 2 }, terminating: 0 });

    // Second worker: re-applies batch 2 (its gate never passed), then is killed inside batch 3's apply.
    let afterReapply: PodCount | undefined;
    const second = await runChild(
      release.id,
      cfgFile,
      rt2.prefix as string,
      (e) => e.event === 'apply-start' && e.batch === 3,
      150,
      async (e) => {
        if (e.event === 'applied' && e.batch === 2) afterReapply = await countPods('eu-west', ns);
      },
    );
    expect(second.events[0]).toMatchObject({ event: 'apply-start', batch: 2, pods: 2 });
    // The re-applied batch 2 replaced nothing: the same new pods as before the first kill.
    expect(afterReapply?.uids[eu(v1)]?.sort()).toEqual(atKill.uids[eu(v1)]?.sort());
    expect(only(afterReapply as PodCount)).toEqual(only(atKill));

    // Third run, in process: batch 3 only, completed whatever the kill left half-done.
    const steps: Step[] = [];
    const { runners } = countingRunners(c, ns, steps);
    const out = await deployJob(
      { releaseId: release.id, step: 'deploy' },
      jobContext(rt2, runners, 200),
      new AbortController().signal,
    );
    expect(out).toBe('deployed to eu-west');
    expect(steps.map((s) => [s.batch, s.pods])).toEqual([[3, 4]]);
    expect(only(steps[0]?.count as PodCount)).toEqual({ byImage: { [eu(v1)]: 4 }, terminating: 0 });
    const audit = await rt2.releases.audit(release.id);
    expect(audit.filter((a) => a.event === 'batch').map((a) => a.detail)).toEqual([
      'eu-west batch 1/3: 1/4 pods',
      'eu-west batch 2/3: 2/4 pods',
      'eu-west batch 3/3: 4/4 pods',
    ]);
    const said = (await thread(rt2, release.id)).join('\n');
    expect(said).toMatch(/resuming after batch 1\/3/);
    expect(said).toMatch(/resuming after batch 2\/3/);
    const st = await trackStatus(kubeRunners(c).clients('eu-west'), appTarget(c, TEST_APP, 'kt', 'eu-west'));
    expect(st.stable).toBe(TEST_APP);
    expect(
      await kubectl('eu-west', ['-n', ns, 'rollout', 'status', `deployment/${TEST_APP}`, '--timeout=60s']),
    ).toMatch(/successfully rolled out/);
  });
});

type ChildEvent = { event: string; batch?: number; pods?: number; region?: string };

async function runChild(
  releaseId: string,
  cfgFile: string,
  prefix: string,
  killWhen: (e: ChildEvent) => boolean,
  delayMs = 0,
  onEvent?: (e: ChildEvent) => Promise<void>,
): Promise<{ events: ChildEvent[]; killedAt?: ChildEvent }> {
  const child: ChildProcess = spawn(
    process.execPath,
    [join(REPO_ROOT, 'test/support/kube.ts'), 'deploy', releaseId],
    {
      env: { ...process.env, FERRY_TEST_CONFIG: cfgFile, FERRY_TEST_PREFIX: prefix, REDIS_URL: redisUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const events: ChildEvent[] = [];
  const pending: Promise<void>[] = [];
  let killedAt: ChildEvent | undefined;
  let err = '';
  child.stderr?.on('data', (b: Buffer) => {
    err += b.toString();
  });
  let buf = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.stdout?.on('data', (b: Buffer) => {
    buf += b.toString();
    for (;;) {
      const i = buf.indexOf('\n');
      if (i < 0) break;
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let e: ChildEvent;
      try {
        e = JSON.parse(line) as ChildEvent;
      } catch {
        continue;
      }
      events.push(e);
      if (onEvent) pending.push(onEvent(e));
      if (!killedAt && killWhen(e)) {
        killedAt = e;
        setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    }
  });
  const code = await exited;
  await Promise.all(pending);
  if (!killedAt) throw new Error(`child exited (${code}) before the kill point: ${err.slice(-2000)}`);
  return { events, ...(killedAt ? { killedAt } : {}) };
}

describe('two regions', () => {
  it('rolls out eu-west and us-east in parallel, exactly, and finishes verified', async () => {
    const ns = await namespace('deploy2');
    await kubectl('us-east', ['create', 'namespace', ns]);
    cleanups.push(() => kubectl('us-east', ['delete', 'namespace', ns, '--wait=false']));
    const config = kubeTestConfig(ns, {
      regions: ['eu-west', 'us-east'],
      batches: [{ size: '50%' }, { size: '100%' }],
      order: 'parallel',
    });
    const rt = runtime(config);
    const steps: Step[] = [];
    const { runners } = testRunners(config, (r, region) =>
      tapRollout(r, {
        afterApply: async (pods, batch) => {
          steps.push({ region, batch, pods, count: await countPods(region as 'eu-west', ns) });
        },
      }),
    );
    await kubectl('us-east', ['-n', ns, 'get', 'sa/default'], {}).catch(async () => {
      await new Promise((r) => setTimeout(r, 3000));
    });
    const a = await deploy(rt, runners, 'v1', v1);
    expect(a.result).toBe('deployed to eu-west, us-east');
    steps.length = 0;
    const b = await deploy(rt, runners, 'v2', v2, false);
    expect(b.result).toBe('deployed to eu-west, us-east');
    for (const region of ['eu-west', 'us-east'] as const) {
      const mine = steps.filter((s) => s.region === region);
      expect(mine.map((s) => only(s.count))).toEqual([
        { byImage: { [regionRef(region, v2)]: 2, [regionRef(region, v1)]: 2 }, terminating: 0 },
        { byImage: { [regionRef(region, v2)]: 4 }, terminating: 0 },
      ]);
    }
    const fin = await finishJob(
      { releaseId: b.release.id, step: 'finish' },
      jobContext(rt, runners, 200),
      new AbortController().signal,
    );
    expect(fin).toBe('succeeded');
  });
});

describe('RBAC (deploy/rbac) is enough for a rollout, and no more', () => {
  it('rolls out with a service account bound to ferry-deployer; cannot delete a namespace or read secrets', async () => {
    const ns = await namespace('rbac');
    const crb = `ferry-node-reader-${ns}`.slice(0, 63);
    await kubectl('eu-west', ['apply', '-f', join(REPO_ROOT, 'deploy/rbac/clusterroles.yaml')]);
    await kubectl('eu-west', ['-n', ns, 'create', 'serviceaccount', 'ferry']);
    await kubectl('eu-west', [
      '-n',
      ns,
      'create',
      'rolebinding',
      'ferry-deployer',
      '--clusterrole=ferry-deployer',
      `--serviceaccount=${ns}:ferry`,
    ]);
    await kubectl('eu-west', [
      'create',
      'clusterrolebinding',
      crb,
      '--clusterrole=ferry-node-reader',
      `--serviceaccount=${ns}:ferry`,
    ]);
    cleanups.push(() => kubectl('eu-west', ['delete', 'clusterrolebinding', crb, '--ignore-not-found']));
    const token = (await kubectl('eu-west', ['-n', ns, 'create', 'token', 'ferry', '--duration=1h'])).trim();
    const raw = JSON.parse(
      await kubectl('eu-west', ['config', 'view', '--raw', '--minify', '--context', 'eu-west', '-o', 'json']),
    ) as { clusters: { name: string; cluster: Record<string, unknown> }[] };
    const cluster = raw.clusters[0]?.cluster;
    const file = join(mkdtempSync(join(tmpdir(), 'ferry-sa-')), 'kubeconfig');
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'eu-west', cluster }],
        users: [{ name: 'ferry', user: { token } }],
        contexts: [{ name: 'eu-west', context: { cluster: 'eu-west', user: 'ferry', namespace: ns } }],
        'current-context': 'eu-west',
      }),
    );
    const config = kubeTestConfig(ns, { prewarm: true });
    const kube = kubeRunners(config, { kubeconfig: file, defaultReplicas: 2, pollMs: 250 });
    const spec = { app: TEST_APP, environment: 'kt', region: 'eu-west' };
    const r1 = new KubeRollout(kube.clients('eu-west'), config, {
      ...spec,
      releaseId: 'rbac-1',
      version: 'v1',
      image: v1,
    });
    await r1.prepare();
    await r1.prewarm(2);
    await r1.applyBatch(2, 1);
    expect(await r1.gate(2, 500, 0, 90_000)).toEqual({ ok: true });
    // A second version through every verb: pre-warm pod create/delete, apply, scale, gate, rollback.
    const r2 = new KubeRollout(kube.clients('eu-west'), config, {
      ...spec,
      releaseId: 'rbac-2',
      version: 'v2',
      image: v2,
    });
    expect((await r2.prepare()).previousImage).toBe(regionRef('eu-west', v1));
    await r2.prewarm(1);
    await r2.applyBatch(1, 1);
    expect(await r2.gate(1, 500, 0, 90_000)).toEqual({ ok: true });
    await r2.rollback();
    expect(only(await countPods('eu-west', ns))).toEqual({
      byImage: { [regionRef('eu-west', v1)]: 2 },
      terminating: 0,
    });
    // rollback() returns once every pod is back on v1; readiness follows within the probe period.
    await expect
      .poll(
        () => kube.verify({ app: TEST_APP, environment: 'kt' } as Release, 'eu-west', v1, undefined as never),
        {
          timeout: 60_000,
          interval: 500,
        },
      )
      .toEqual({ ok: true });

    const as = (args: string[]) =>
      run(infra().kubernetes.kubectl, ['--kubeconfig', file, '--context', 'eu-west', ...args], {
        allowFail: true,
      });
    const delNs = await as(['delete', 'namespace', ns, '--dry-run=server']);
    expect(delNs.code).not.toBe(0);
    expect(delNs.stderr).toMatch(/forbidden/i);
    const secrets = await as(['-n', ns, 'get', 'secrets']);
    expect(secrets.code).not.toBe(0);
    expect(secrets.stderr).toMatch(/forbidden/i);
    const can = async (verb: string, res: string) =>
      (await as(['auth', 'can-i', verb, res, '-n', ns])).stdout.trim();
    expect(await can('patch', 'deployments')).toBe('yes');
    // delete: to retire a Deployment it adopted and emptied (`/release adopt`)
    expect(await can('delete', 'deployments')).toBe('yes');
    expect(await can('delete', 'services')).toBe('no');
    expect(await can('patch', 'horizontalpodautoscalers.autoscaling')).toBe('yes');
    expect(await can('create', 'pods/exec')).toBe('yes');
    expect(await can('get', 'configmaps')).toBe('no');
    expect((await as(['auth', 'can-i', 'list', 'deployments', '-n', 'default'])).stdout.trim()).toBe('no');
  });
});

describe('client helpers', () => {
  it('prepare() says clearly when the region registry lacks the image', async () => {
    const ns = await namespace('noimg');
    const config = kubeTestConfig(ns);
    const kube = kubeRunners(config);
    const missing = { image: v1.image, digest: `sha256:${'0'.repeat(64)}` };
    const r = new KubeRollout(kube.clients('eu-west'), config, {
      releaseId: 'x',
      app: TEST_APP,
      environment: 'kt',
      version: 'v0',
      region: 'eu-west',
      image: missing,
    });
    await expect(r.prepare()).rejects.toThrow(
      /eu-west: the region registry 127\.0\.0\.1:5001 has no ferry\/hello-app@sha256:0{12}…; the pods could not pull it\. Sync the image to eu-west first/,
    );
  });

  it('applyBatch alone: exact counts per image at every step, twice the same input changes nothing', async () => {
    const ns = await namespace('apply');
    const config = kubeTestConfig(ns);
    const kube = kubeRunners(config, { defaultReplicas: 4, pollMs: 250 });
    const spec = { app: TEST_APP, environment: 'kt', region: 'eu-west' };
    const opts = { defaultReplicas: 4, pollMs: 250 };
    const eu = (img: BuiltImage) => regionRef('eu-west', img);
    const r1 = new KubeRollout(
      kube.clients('eu-west'),
      config,
      {
        ...spec,
        releaseId: 'a-1',
        version: 'v1',
        image: v1,
      },
      opts,
    );
    expect(await r1.prepare()).toEqual({ replicas: 4, previousImage: null });
    await r1.applyBatch(4, 1);
    expect(only(await countPods('eu-west', ns))).toEqual({ byImage: { [eu(v1)]: 4 }, terminating: 0 });
    const r2 = new KubeRollout(
      kube.clients('eu-west'),
      config,
      {
        ...spec,
        releaseId: 'a-2',
        version: 'v2',
        image: v2,
      },
      opts,
    );
    expect(await r2.prepare()).toEqual({ replicas: 4, previousImage: eu(v1) });
    const seen: Record<string, number>[] = [];
    for (const [i, p] of [1, 3, 4].entries()) {
      await r2.applyBatch(p, i + 1);
      const before = await countPods('eu-west', ns);
      seen.push(before.byImage);
      const gens = await kubectl('eu-west', [
        '-n',
        ns,
        'get',
        'deploy',
        '-o',
        'jsonpath={.items[*].metadata.generation}',
      ]);
      await r2.applyBatch(p, i + 1);
      expect(
        await kubectl('eu-west', [
          '-n',
          ns,
          'get',
          'deploy',
          '-o',
          'jsonpath={.items[*].metadata.generation}',
        ]),
      ).toBe(gens);
      expect((await countPods('eu-west', ns)).uids).toEqual(before.uids);
    }
    expect(seen).toEqual([{ [eu(v2)]: 1, [eu(v1)]: 3 }, { [eu(v2)]: 3, [eu(v1)]: 1 }, { [eu(v2)]: 4 }]);
    // A restarted job (new object, same release) continues the same rollout.
    const again = new KubeRollout(
      kube.clients('eu-west'),
      config,
      {
        ...spec,
        releaseId: 'a-2',
        version: 'v2',
        image: v2,
      },
      opts,
    );
    expect(await again.prepare()).toEqual({ replicas: 4, previousImage: eu(v1) });
    expect(again.newTrack).toBe(r2.newTrack);
    // Rollback: every pod back on v1 at once.
    await again.rollback();
    expect(only(await countPods('eu-west', ns))).toEqual({ byImage: { [eu(v1)]: 4 }, terminating: 0 });
    const st = await trackStatus(kube.clients('eu-west'), appTarget(config, TEST_APP, 'kt', 'eu-west'));
    expect(st.stable).toBe(TEST_APP);
    expect(st.replicas).toEqual({ [TEST_APP]: 4, [`${TEST_APP}-b`]: 0 });
  });
});
