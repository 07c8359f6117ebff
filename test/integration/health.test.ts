// /healthz and /readyz of every Ferry process, run as the real processes
// (`ferry worker`, `ferry bot`, `ferry watch node-agent`) on a real Redis that
// the test stops and starts: ready only while Redis answers (and, for the
// bot, the Kubernetes API), alive all along.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import { NODE, recordingWorkerArgs, started, writeUnreachableKubeconfig } from '../support/node.ts';
import { freePort, TestRedis } from '../support/redis.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const SECRET = 'health-test-signing-secret';
const BOT = 'xoxb-ferry-health-test';
let redis: TestRedis;
let emu: SlackEmulator;
let dir: string;
let configFile: string;
const children: ChildProcess[] = [];
const output: string[] = [];

/** `ferry <args>`, or the worker with the recording runners (no builds or clusters behind it). */
function ferry(args: string[], env: Record<string, string>): ChildProcess {
  const argv =
    args[0] === 'recording-worker'
      ? recordingWorkerArgs(configFile)
      : [join(ROOT, 'bin/ferry.mjs'), ...args, '--config', configFile];
  const child = spawn(NODE, argv, {
    env: {
      ...process.env,
      REDIS_URL: redis.url,
      FERRY_PREFIX: `health${process.pid}`,
      FERRY_OPS_PORT: '0',
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // Kept for the failure message: why a process did not come up.
  child.stderr?.on('data', (d: Buffer) => {
    output.push(`${args.join(' ')}: ${d.toString()}`);
  });
  children.push(child);
  return child;
}

async function get(url: string): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    return { status: 0, body: (err as Error).message };
  }
}

/** Polls until the endpoint answers `status`; returns the last answer. */
async function until(
  url: string,
  status: number,
  timeoutMs = 90_000,
): Promise<{ status: number; body: string }> {
  const end = Date.now() + timeoutMs;
  let last = await get(url);
  while (last.status !== status && Date.now() < end) {
    // A process that died will not answer: say so now, with what it wrote, rather than at the deadline.
    const dead = children.find((c) => c.exitCode !== null || c.signalCode !== null);
    if (dead) throw new Error(`${dead.spawnargs.join(' ')} exited; process output:\n${output.join('')}`);
    await new Promise((r) => setTimeout(r, 200));
    last = await get(url);
  }
  if (last.status !== status)
    throw new Error(
      `${url} answered ${last.status} (${last.body}), wanted ${status}; process output:\n${output.join('')}`,
    );
  return last;
}

beforeAll(async () => {
  redis = await TestRedis.start();
  emu = await SlackEmulator.start({ signingSecret: SECRET, botToken: BOT });
  dir = mkdtempSync(join(tmpdir(), 'ferry-health-'));
  configFile = join(ROOT, 'examples', 'ferry.yaml');
  await writeUnreachableKubeconfig(join(dir, 'kubeconfig'));
  mkdirSync(join(dir, 'cgroup'));
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await emu?.close();
  await redis?.stop();
});

describe('health endpoints follow Redis', () => {
  it('worker, bot and node agent: alive throughout, ready only while Redis answers', async () => {
    const [workerPort, botPort, agentPort] = [await freePort(), await freePort(), await freePort()];
    const worker = ferry(['recording-worker'], { FERRY_HEALTH_PORT: String(workerPort) });
    ferry(['bot'], {
      SLACK_BOT_TOKEN: BOT,
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: emu.apiUrl,
      PORT: '0',
      FERRY_HEALTH_PORT: String(botPort),
      // By default the bot's readiness is Redis only: its clusters here do not answer, and it is ready.
      KUBECONFIG: join(dir, 'kubeconfig'),
    });
    ferry(['watch', 'node-agent'], {
      FERRY_REGION: 'eu-west',
      NODE_NAME: 'health-test',
      FERRY_CGROUP_ROOTS: join(dir, 'cgroup'),
      // The agent reads a pod's logs for an alert; its readiness is Redis only.
      KUBECONFIG: join(dir, 'kubeconfig'),
      FERRY_HEALTH_PORT: String(agentPort),
    });
    const bases = [workerPort, botPort, agentPort].map((p) => `http://127.0.0.1:${p}`);
    // Loading takes seconds, up to STARTUP_MS (120 s) on a busy machine: the readiness waits start after it.
    await started(worker, /^ferry worker: running/);

    for (const base of bases) {
      expect((await until(`${base}/readyz`, 200)).body).toBe('ok\n');
      expect((await get(`${base}/healthz`)).status).toBe(200);
      expect((await get(`${base}/metrics`)).body).toContain('process_cpu_seconds_total');
    }

    await redis.stop();
    for (const base of bases) {
      const down = await until(`${base}/readyz`, 503);
      expect(down.body).toMatch(/^redis: /);
      // Liveness does not depend on Redis: an outage must not restart every pod.
      expect(await get(`${base}/healthz`)).toEqual({ status: 200, body: 'ok\n' });
    }

    await redis.up();
    for (const base of bases) expect((await until(`${base}/readyz`, 200)).body).toBe('ok\n');
  }, 420_000);

  it('bot with FERRY_READY_KUBE=1: not ready while the Kubernetes API does not answer, with the region named', async () => {
    const port = await freePort();
    ferry(['bot'], {
      SLACK_BOT_TOKEN: BOT,
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: emu.apiUrl,
      PORT: '0',
      FERRY_HEALTH_PORT: String(port),
      FERRY_READY_KUBE: '1',
      KUBECONFIG: join(dir, 'kubeconfig'),
    });
    const base = `http://127.0.0.1:${port}`;
    await until(`${base}/healthz`, 200);
    const answer = await until(`${base}/readyz`, 503);
    expect(answer.body).toMatch(/^kubernetes eu-west: .+\nkubernetes us-east: .+\n$/);
    expect(answer.body).not.toContain('redis');
  }, 120_000);
});
