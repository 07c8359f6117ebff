// Benchmark: how fast an OOM kill becomes an alert in chat, and how fast a
// `logs` request of 200 lines is answered — on the real eu-west cluster, with
// the real notify consumer posting into the Slack emulator.
//
//   node bench/oom.ts            → bench/results/oom.json and oom.md
//
// Paths measured separately:
//   pod-status: `ferry watch` on pods/events only (no node agent); kills of
//     the main process (Kubernetes reports them as OOMKilled).
//   cgroup: the node agent alone (no API watch); kills of a child process
//     (Kubernetes reports nothing).
// The kill time is taken by the bench itself, polling the container's memory
// cgroup `oom_kill` counter every 5 ms (independent of the agent's poll).
// Each kill is in its own deployment, so each is a new alert (a first post,
// not an edit of an earlier one).
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { SlackEmulator } from '../dev/slack-emulator/index.ts';
import { startNotifier } from '../src/chat/notifier.ts';
import { notifierClient } from '../src/chat/slack/app.ts';
import { type ChatClient, SlackDelivery } from '../src/chat/slack/delivery.ts';
import type { FerryConfig } from '../src/domain/config.ts';
import { clusterReader } from '../src/kube/logs.ts';
import { logger } from '../src/logging.ts';
import { KubeLogService } from '../src/logs/service.ts';
import { QueueAnnouncer } from '../src/queue/announcer.ts';
import { ReleaseStore } from '../src/store/releases.ts';
import { parseOomKill, scanCgroups } from '../src/watch/node-agent.ts';
import { localTargets } from '../src/watch/targets.ts';
import { startWatch } from '../src/watch/watcher.ts';
import { exampleConfig } from '../test/support/config.ts';
import { ensureInfra, kubectl, kubectlJson, newNamespace, waitFor } from '../test/support/infra.ts';
import { TestRedis } from '../test/support/redis.ts';

const here = dirname(fileURLToPath(import.meta.url));
const N = Number(process.env.BENCH_OOM_RUNS ?? 6);
const LOG_RUNS = Number(process.env.BENCH_LOG_RUNS ?? 5);
const AGENT_POLL_MS = Number(process.env.BENCH_AGENT_POLL_MS ?? 100);
const CHANNEL = 'C_PAYMENTS_ALERTS';

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}
const summary = (xs: number[]) => ({
  n: xs.length,
  p50: Math.round(pct(xs, 50)),
  p95: Math.round(pct(xs, 95)),
  min: Math.round(Math.min(...xs)),
  max: Math.round(Math.max(...xs)),
});

/** Whether this host's cgroup v2 hierarchy has the memory controller (else memory.events does not exist). */
async function cgroupV2Memory(): Promise<string> {
  for (const f of ['/sys/fs/cgroup/cgroup.controllers', '/sys/fs/cgroup/unified/cgroup.controllers']) {
    try {
      const controllers = (await readFile(f, 'utf8')).trim();
      return controllers.split(/\s+/).includes('memory')
        ? `yes (${f})`
        : `no: ${f} lists "${controllers}" — the memory controller is on cgroup v1 here`;
    } catch {
      // not this layout
    }
  }
  return 'no cgroup v2 hierarchy mounted';
}

async function main() {
  const started = Date.now();
  const v2Memory = await cgroupV2Memory();
  const info = await ensureInfra(['redis', 'registries', 'images', 'k8s']);
  const server = await TestRedis.start();
  const store = new Redis(server.url);
  const queueConn = new Redis(server.url, { maxRetriesPerRequest: null });
  const prefix = `bench${Date.now().toString(36)}`;
  const emu = await SlackEmulator.start({ signingSecret: 'bench-secret', botToken: 'xoxb-bench' });
  const ns = await newNamespace('eu-west', 'bench-oom');
  const config: FerryConfig = exampleConfig();
  const payments = config.apps.payments as FerryConfig['apps'][string];
  payments.namespace = ns.name;
  payments.channels = { releases: payments.channels?.releases ?? CHANNEL, alerts: CHANNEL };
  config.apps = { payments };
  const announcer = new QueueAnnouncer(queueConn, prefix);
  const releases = new ReleaseStore(store, prefix);
  const log = logger('bench-oom').child({}, { level: 'warn' });
  const notifier = startNotifier({
    store,
    connection: queueConn,
    queue: announcer.queue,
    prefix,
    delivery: new SlackDelivery({
      config: () => config,
      releases,
      store,
      prefix,
      client: notifierClient('xoxb-bench', emu.apiUrl) as unknown as ChatClient,
      log,
    }),
    log,
  });

  const image = `${info.images.sampleApp.image}:v1`;
  const deploy = (name: string) =>
    JSON.stringify({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: ns.name },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: {
            terminationGracePeriodSeconds: 1,
            enableServiceLinks: false,
            containers: [
              { name: 'app', image, resources: { limits: { memory: '48Mi' }, requests: { memory: '16Mi' } } },
            ],
          },
        },
      },
    });
  const names = [
    ...Array.from({ length: N }, (_, i) => `main-${i}`),
    ...Array.from({ length: N }, (_, i) => `child-${i}`),
    ...Array.from({ length: N }, (_, i) => `poll-${i}`),
  ];
  await kubectl('eu-west', ['apply', '-f', '-'], {
    input: names
      .map((n) => deploy(n))
      .join('\n---\n')
      .replace(/\n---\n/g, '\n---\n'),
  });
  interface PodJson {
    metadata: { name: string; uid: string; labels: Record<string, string> };
    status: { phase: string; containerStatuses?: { ready: boolean; containerID?: string }[] };
  }
  const pods = await waitFor(
    async () => {
      const l = await kubectlJson<{ items: PodJson[] }>('eu-west', ['-n', ns.name, 'get', 'pods']);
      const ready = l.items.filter((p) => p.status.containerStatuses?.[0]?.ready);
      return ready.length >= names.length ? ready : undefined;
    },
    { timeoutMs: 300_000, intervalMs: 2000, what: `${names.length} ready pods` },
  );
  const podOf = (name: string) => pods.find((p) => p.metadata.labels.app === name) as PodJson;
  const targets = localTargets(config).filter((t) => t.region === 'eu-west');

  /** Polls the container's cgroup every 5 ms; resolves with the time the kill counter went up. */
  async function killTime(p: PodJson): Promise<() => Promise<number>> {
    const cid = p.status.containerStatuses?.[0]?.containerID?.replace(/^.*:\/\//, '');
    const cg = (await scanCgroups(targets[0]?.roots ?? [])).find((c) => c.containerId === cid);
    if (!cg) throw new Error(`no cgroup for ${p.metadata.name}`);
    const file = join(cg.dir, cg.version === 1 ? 'memory.oom_control' : 'memory.events');
    const base = parseOomKill(await readFile(file, 'utf8')) ?? 0;
    let at = 0;
    let stop = false;
    const loop = (async () => {
      while (!stop && !at) {
        try {
          if ((parseOomKill(await readFile(file, 'utf8')) ?? 0) > base) at = Date.now();
        } catch {
          at = Date.now(); // cgroup removed: the container ended
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    return async () => {
      await Promise.race([loop, new Promise((r) => setTimeout(r, 30_000))]);
      stop = true;
      return at;
    };
  }

  const enqueued = new Map<string, number>();
  const posted = async (pod: string) =>
    waitFor(
      () => {
        const m = emu.channelMessages(CHANNEL).find((x) => JSON.stringify(x).includes(pod));
        return m ? Math.round(Number(m.ts) * 1000) : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 20, what: `the alert for ${pod} in the emulator` },
    );

  async function measure(kind: 'main' | 'child' | 'poll') {
    const toPost: number[] = [];
    const toEnqueue: number[] = [];
    for (let i = 0; i < N; i++) {
      const p = podOf(`${kind}-${i}`);
      const kill = await killTime(p);
      const path = kind === 'main' ? '/control/oom' : '/control/oom-child?mb=128';
      await kubectl('eu-west', [
        '-n',
        ns.name,
        'exec',
        p.metadata.name,
        '--',
        'wget',
        '-qO-',
        `http://127.0.0.1:8080${path}`,
      ]);
      const killedAt = await kill();
      const postedAt = await posted(p.metadata.name);
      const enq = enqueued.get(p.metadata.name);
      if (!killedAt) throw new Error(`no kill seen for ${p.metadata.name}`);
      toPost.push(postedAt - killedAt);
      if (enq) toEnqueue.push(enq - killedAt);
      process.stderr.write(
        `${kind} ${i}: kill→enqueued ${enq ? enq - killedAt : '?'} ms, kill→posted ${postedAt - killedAt} ms\n`,
      );
    }
    return { toPost, toEnqueue };
  }

  const onAlert = (a: { fields: [string, string][] }) => {
    const pod = a.fields.find(([l]) => l === 'Pod')?.[1]?.split('/')[1];
    if (pod && !enqueued.has(pod)) enqueued.set(pod, Date.now());
  };
  // 1. pod-status path: API watch only
  const apiWatch = startWatch({
    config: () => config,
    redis: store,
    prefix,
    announcer,
    releases,
    log,
    regions: ['eu-west'],
    onAlert,
  });
  await apiWatch.ready;
  const podStatus = await measure('main');
  await apiWatch.stop();
  // 2. cgroup path: the node agent alone, as deployed (inotify on cgroup v2, polling on v1)
  const agent = startWatch({
    config: () => config,
    redis: store,
    prefix,
    announcer,
    releases,
    log,
    regions: ['eu-west'],
    watchApi: false,
    nodeAgents: targets,
    pollMs: AGENT_POLL_MS,
    onAlert,
  });
  await agent.ready;
  const agentModes = { ...agent.agents[0]!.stats };
  const cgroup = await measure('child');
  await agent.stop();
  // 3. the same, notifications off: every cgroup polled (the fallback)
  const poller = startWatch({
    config: () => config,
    redis: store,
    prefix,
    announcer,
    releases,
    log,
    regions: ['eu-west'],
    watchApi: false,
    nodeAgents: targets,
    pollMs: AGENT_POLL_MS,
    agentNotify: false,
    onAlert,
  });
  await poller.ready;
  const polled = await measure('poll');
  await poller.stop();

  // 4. logs: 200 lines of output and of the GC log, to the reply and to the message with its file in the
  // emulator, each beside the kubectl command a person would run for the same lines
  const kubectlTimes: Record<'stdout' | 'gc', number[]> = { stdout: [], gc: [] };
  const kubectlArgs = {
    stdout: ['-n', ns.name, 'logs', 'deployment/child-0', '--tail=200'],
    gc: ['-n', ns.name, 'exec', 'deployment/child-0', '--', 'tail', '-n', '200', '/var/log/app/gc.log'],
  };
  const service = new KubeLogService({ config: () => config, announcer, releases, cluster: clusterReader });
  const logTimes: Record<'stdout' | 'gc', { reply: number[]; posted: number[] }> = {
    stdout: { reply: [], posted: [] },
    gc: { reply: [], posted: [] },
  };
  // give the GC log some length (ferry-run writes a line every 2 s)
  await kubectl('eu-west', [
    '-n',
    ns.name,
    'exec',
    podOf('child-0').metadata.name,
    '--',
    'sh',
    '-c',
    'for i in $(seq 1 400); do echo "[filler] GC($i) Pause Young 4M->2M(16M) 0.1ms password=hunter2"; done >> /var/log/app/gc.log',
  ]);
  payments.deployment = 'child-0';
  for (const file of ['stdout', 'gc'] as const) {
    for (let i = 0; i < LOG_RUNS; i++) {
      const before = emu.channelMessages('C_RELEASES').length;
      const t0 = Date.now();
      const reply = await service.read(
        { kind: 'logs', app: 'payments', lines: 200, ...(file === 'gc' ? { file: 'gc' } : {}) },
        { userId: 'U_ALICE', channel: 'C_RELEASES' },
      );
      const t1 = Date.now();
      if (!reply.ok) throw new Error(reply.text);
      const at = await waitFor(
        () => {
          const msgs = emu.channelMessages('C_RELEASES');
          const m = msgs.length > before ? msgs.at(-1) : undefined;
          return m && (m.files?.length ?? 0) > 0 ? Date.now() : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 10, what: 'the logs message with its file' },
      );
      logTimes[file].reply.push(t1 - t0);
      logTimes[file].posted.push(at - t0);
      const k0 = performance.now();
      const lines = (await kubectl('eu-west', kubectlArgs[file])).split('\n').filter(Boolean).length;
      kubectlTimes[file].push(performance.now() - k0);
      if (lines === 0) throw new Error(`kubectl ${file}: no lines`);
    }
  }

  await notifier.close();
  await announcer.close();
  await ns.remove().catch(() => {});
  await emu.close();
  store.disconnect();
  queueConn.disconnect();
  await server.stop();

  const ratioOf = (a: number[], b: number[]) => Math.round((pct(a, 50) / pct(b, 50)) * 100) / 100;
  const result = {
    at: new Date().toISOString(),
    machine: {
      cores: cpus().length,
      cpu: cpus()[0]?.model,
      load: loadavg().map((x) => Number(x.toFixed(2))),
    },
    node: process.version,
    kubernetes: info.kubernetes.version,
    runs: N,
    agentPollMs: AGENT_POLL_MS,
    oom: {
      podStatus: {
        killToEnqueuedMs: summary(podStatus.toEnqueue),
        killToPostedMs: summary(podStatus.toPost),
      },
      cgroup: { killToEnqueuedMs: summary(cgroup.toEnqueue), killToPostedMs: summary(cgroup.toPost) },
      cgroupPolled: { killToEnqueuedMs: summary(polled.toEnqueue), killToPostedMs: summary(polled.toPost) },
      agentModes: { inotify: agentModes.watched, polled: agentModes.polled },
      cgroupV2Memory: v2Memory,
    },
    logs200: {
      stdout: { replyMs: summary(logTimes.stdout.reply), postedWithFileMs: summary(logTimes.stdout.posted) },
      gcFile: { replyMs: summary(logTimes.gc.reply), postedWithFileMs: summary(logTimes.gc.posted) },
      kubectlLogsTail: summary(kubectlTimes.stdout),
      kubectlExecTail: summary(kubectlTimes.gc),
      stdoutReplyVsKubectl: ratioOf(logTimes.stdout.reply, kubectlTimes.stdout),
      gcReplyVsKubectl: ratioOf(logTimes.gc.reply, kubectlTimes.gc),
    },
    raw: { podStatus, cgroup, polled, logTimes, kubectlTimes },
    wallSeconds: Math.round((Date.now() - started) / 1000),
  };
  await writeFile(join(here, 'results', 'oom.json'), `${JSON.stringify(result, null, 2)}\n`);
  const row = (name: string, s: ReturnType<typeof summary>) =>
    `| ${name} | ${s.n} | ${s.p50} | ${s.p95} | ${s.min} | ${s.max} |`;
  const modes = result.oom.agentModes;
  const md = `# OOM alert and logs latency

Run ${result.at} on ${result.machine.cores} cores (${result.machine.cpu}), load average at the end ${result.machine.load.join(' / ')} — a shared, heavily loaded machine: latencies are noisy. Kubernetes ${result.kubernetes} (local eu-west cluster, kubelet on containerd), Node ${result.node}. ${N} kills per path, each in its own deployment (each alert a first post). Node agent poll interval (for cgroups that cannot notify) ${AGENT_POLL_MS} ms.

cgroup v2 memory controller on this host: ${v2Memory}. The agent as deployed watched ${modes.inotify} container cgroups by inotify on \`memory.events\` and polled ${modes.polled}.

The kill time is when the container's memory cgroup \`oom_kill\` counter went up, read by the bench itself every 5 ms. "Posted" is the \`ts\` of the alert message in the Slack emulator, posted by the real notify consumer (BullMQ → renderer → Web API).

## OOM kill → alert (ms)

| path | n | p50 | p95 | min | max |
| --- | ---: | ---: | ---: | ---: | ---: |
${row('pod status (main process killed): kill → enqueued', result.oom.podStatus.killToEnqueuedMs)}
${row('pod status (main process killed): kill → posted', result.oom.podStatus.killToPostedMs)}
${row(`node agent as deployed (${modes.inotify ? 'inotify' : 'polling'}), child killed: kill → enqueued`, result.oom.cgroup.killToEnqueuedMs)}
${row(`node agent as deployed (${modes.inotify ? 'inotify' : 'polling'}), child killed: kill → posted`, result.oom.cgroup.killToPostedMs)}
${row('node agent, notifications off (polling fallback), child killed: kill → enqueued', result.oom.cgroupPolled.killToEnqueuedMs)}
${row('node agent, notifications off (polling fallback), child killed: kill → posted', result.oom.cgroupPolled.killToPostedMs)}

Target: kill → posted p95 < 200 ms on the cgroup path.

## 200 lines of logs, beside kubectl (ms)

| request | n | p50 | p95 | min | max |
| --- | ---: | ---: | ---: | ---: | ---: |
${row('container output: Ferry, reply to the person', result.logs200.stdout.replyMs)}
${row('container output: Ferry, message + file in the emulator', result.logs200.stdout.postedWithFileMs)}
${row('container output: `kubectl logs deployment/… --tail=200`', result.logs200.kubectlLogsTail)}
${row('GC log file: Ferry (exec tail), reply to the person', result.logs200.gcFile.replyMs)}
${row('GC log file: Ferry (exec tail), message + file in the emulator', result.logs200.gcFile.postedWithFileMs)}
${row('GC log file: `kubectl exec deployment/… -- tail -n 200`', result.logs200.kubectlExecTail)}

Ferry's reply over kubectl (p50, target ≤ 1.2×): container output **${result.logs200.stdoutReplyVsKubectl}×**, file **${result.logs200.gcReplyVsKubectl}×**. Each Ferry request is followed by the kubectl command for the same lines, alternating, in the same run.

Notes:

- The pod-status path waits for the kubelet to notice the dead container and update the pod status (PLEG), then the watch event, a Redis dedupe round trip, the previous container's last 20 log lines, and the queue.
- The cgroup path: on cgroup v2 the agent reads \`memory.events\` when inotify says it changed; on cgroup v1 it polls \`memory.oom_control\` every ${AGENT_POLL_MS} ms (v1 notifies only through an eventfd registered in \`cgroup.event_control\`, which Node cannot create without native code). Then 20 ms of grace: the container's init alive in /proc with no SIGKILL pending → a child kill, reported at once; otherwise a settle delay of 150 ms (no tasks left → the main process), then the pod lookup (from the watch's pod index, or the API) and the last log lines.
- Logs: "reply" is \`LogService.read\` returning (the log read, redaction and the enqueue); "message + file" is until the notify consumer has posted the snippet and uploaded the file in the emulator. kubectl is timed as a process run to exit (it starts, loads the kubeconfig, resolves the deployment's pod, reads).
- Wall time of the bench: ${result.wallSeconds} s.
`;
  await writeFile(join(here, 'results', 'oom.md'), md);
  process.stdout.write(md);
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
