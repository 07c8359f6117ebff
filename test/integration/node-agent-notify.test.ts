// How the node agent learns of an OOM kill: by inotify on cgroup v2
// memory.events, by polling on cgroup v1 (or when notifications are off).
//
// The clusters of this machine put the memory controller on cgroup v1 (the
// unified hierarchy has no memory.events), so these tests lay out container
// cgroup directories the agent recognises in a temporary directory and raise
// the counter by writing the file, as the kernel does. inotify, the agent's
// reads and its alerts are the real ones; test/e2e/watch.test.ts covers a
// real kill on the cluster's v1 cgroups.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeAgent } from '../../src/watch/node-agent.ts';
import type { OomFinding } from '../../src/watch/oom.ts';
import { PodIndex } from '../../src/watch/pods.ts';

const HOUR = 3_600_000;
const dirs: string[] = [];
const agents: NodeAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) a.stop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A container cgroup directory (cgroupfs layout) for a pod the index knows. */
async function containerCgroup(version: 1 | 2) {
  const root = await mkdtemp(join(tmpdir(), 'ferry-cgroup-'));
  dirs.push(root);
  const uid = randomUUID();
  const cid = randomBytes(32).toString('hex');
  const dir = join(root, 'kubepods', 'burstable', `pod${uid}`, cid);
  await mkdir(dir, { recursive: true });
  const counterFile = join(dir, version === 2 ? 'memory.events' : 'memory.oom_control');
  const counter = (n: number) =>
    version === 2
      ? `low 0\nhigh 0\nmax ${n * 3}\noom ${n}\noom_kill ${n}\n`
      : `oom_kill_disable 0\nunder_oom 0\noom_kill ${n}\n`;
  await writeFile(counterFile, counter(0));
  // a task that is not the container's init: a kill leaves it running, so the victim is a child
  await writeFile(join(dir, 'cgroup.procs'), `${process.pid}\n`);
  const pod: V1Pod = {
    metadata: { uid, name: 'api-7d9f-abcde', namespace: 'payments', labels: { app: 'api' } },
    spec: { containers: [{ name: 'app', resources: { limits: { memory: '64Mi' } } }] },
    status: { containerStatuses: [{ name: 'app', containerID: `containerd://${cid}` } as never] },
  };
  const pods = new PodIndex();
  pods.put(pod);
  return { root, dir, cid, pods, raise: (n: number) => writeFile(counterFile, counter(n)) };
}

function capturingLog() {
  const lines: { msg: string; level: number }[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

function startAgent(
  cg: Awaited<ReturnType<typeof containerCgroup>>,
  opts: { pollMs: number; notify?: boolean },
) {
  const findings: OomFinding[] = [];
  let found: (f: OomFinding) => void = () => {};
  const next = new Promise<OomFinding>((r) => {
    found = r;
  });
  const { log, lines } = capturingLog();
  const agent = new NodeAgent({
    region: 'eu-west',
    roots: [cg.root],
    pods: cg.pods,
    log,
    pollMs: opts.pollMs,
    scanMs: HOUR,
    settleMs: 10,
    ...(opts.notify !== undefined ? { notify: opts.notify } : {}),
    onFinding: async (f) => {
      findings.push(f);
      found(f);
    },
  });
  agents.push(agent);
  return { agent, findings, next, lines };
}

describe('node agent: how an OOM kill is noticed', () => {
  it('cgroup v2: inotify on memory.events raises the alert with no poll in between', async () => {
    const cg = await containerCgroup(2);
    // polling once an hour: only the notification can deliver within the test
    const { agent, next, lines } = startAgent(cg, { pollMs: HOUR });
    await agent.start();
    expect(agent.modeOf(cg.dir)).toBe('inotify');
    expect(lines.map((l) => l.msg).join('\n')).toMatch(/cgroup v2 memory: OOM kills notified by inotify/);
    const before = Date.now();
    await cg.raise(1);
    const f = await next;
    expect(f).toMatchObject({
      source: 'cgroup',
      pod: 'api-7d9f-abcde',
      container: 'app',
      namespace: 'payments',
    });
    expect(f.detectedAt - before).toBeLessThan(1000);
    expect(agent.stats.notified).toBeGreaterThan(0);
    expect(agent.stats.polls).toBe(1); // the start's scan only
  });

  it('cgroup v2 with notifications off: polled, with the log line saying so, and still alerted', async () => {
    const cg = await containerCgroup(2);
    const { agent, next, lines } = startAgent(cg, { pollMs: 50, notify: false });
    await agent.start();
    expect(agent.modeOf(cg.dir)).toBe('poll');
    expect(lines.map((l) => l.msg).join('\n')).toMatch(/some cgroups polled/);
    await cg.raise(1);
    expect(await next).toMatchObject({ source: 'cgroup', pod: 'api-7d9f-abcde' });
    expect(agent.stats.notified).toBe(0);
  });

  it('cgroup v1: polled (no eventfd from Node), saying why, and alerted within a few polls', async () => {
    const cg = await containerCgroup(1);
    const { agent, next, lines } = startAgent(cg, { pollMs: 50 });
    await agent.start();
    expect(agent.modeOf(cg.dir)).toBe('poll');
    expect(lines.map((l) => l.msg).join('\n')).toMatch(
      /cgroup v1 memory: .*polling memory\.oom_control.*eventfd/,
    );
    const before = Date.now();
    await cg.raise(1);
    const f = await next;
    expect(f).toMatchObject({ source: 'cgroup', container: 'app' });
    expect(f.detectedAt - before).toBeLessThan(1000);
  });

  it('two kills in quick succession are two findings (a change seen during a check is not lost)', async () => {
    const cg = await containerCgroup(2);
    const { agent, findings } = startAgent(cg, { pollMs: HOUR });
    await agent.start();
    await cg.raise(1);
    await cg.raise(2);
    const deadline = Date.now() + 10_000;
    while (findings.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(findings.map((f) => f.occurrence)).toHaveLength(2);
    expect(new Set(findings.map((f) => f.occurrence)).size).toBe(2);
  });
});
