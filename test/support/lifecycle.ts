// A Ferry runtime on a real Redis with in-process workers and recording
// runners, for lifecycle tests; and helpers to wait for stored states.
import { randomUUID } from 'node:crypto';
import type { FerryConfig } from '../../src/domain/config.ts';
import type { Outbound } from '../../src/domain/ports.ts';
import type { Release, ReleaseState } from '../../src/domain/release.ts';
import { logger } from '../../src/logging.ts';
import { type RunningWorkers, startWorkers } from '../../src/queue/worker.ts';
import { createRuntime, jobContext, type Runtime } from '../../src/runtime.ts';
import { exampleConfig } from './config.ts';
import { type RecordingOptions, RecordingRunners } from './recording-runners.ts';

/** The example config with pauses short enough for tests. */
export function fastConfig(change?: (c: FerryConfig) => void): FerryConfig {
  const c = exampleConfig();
  for (const env of Object.values(c.environments)) {
    env.plan.gate = { ...env.plan.gate, pause: '1s' };
    if (env.plan.batches) env.plan.batches = env.plan.batches.map((b) => ({ ...b, pause: '1s' }));
  }
  for (const f of Object.values(c.factors)) {
    if (f.effects.batches) f.effects.batches = f.effects.batches.map((b) => ({ ...b, pause: '1s' }));
  }
  change?.(c);
  return c;
}

export interface Harness {
  rt: Runtime;
  prefix: string;
  workers?: RunningWorkers;
  startWorkers(opts?: Partial<RecordingOptions>): void;
  stopWorkers(): Promise<void>;
  outbound(): Promise<Outbound[]>;
  close(): Promise<void>;
}

export function harness(redisUrl: string, config: FerryConfig = fastConfig()): Harness {
  const prefix = `t${randomUUID().slice(0, 8)}`;
  const rt = createRuntime({ config, redisUrl, prefix, name: 'test' });
  const h: Harness = {
    rt,
    prefix,
    startWorkers(opts = {}) {
      const runners = new RecordingRunners(rt.store, { stepMs: 50, replicas: 4, ...opts }, prefix);
      h.workers = startWorkers(jobContext(rt, runners, 100), {
        connection: rt.queue,
        prefix,
        lockDuration: 5000,
        log: logger('test-worker').child({}, { level: 'warn' }),
      });
    },
    async stopWorkers() {
      await h.workers?.close();
      h.workers = undefined;
    },
    async outbound() {
      const jobs = await rt.announcer.queue.getJobs(
        ['waiting', 'completed', 'failed', 'delayed', 'prioritized'],
        0,
        -1,
        true,
      );
      return jobs.map((j) => j.data as Outbound);
    },
    async close() {
      await h.stopWorkers();
      await rt.close();
    },
  };
  return h;
}

export async function waitForState(
  rt: Runtime,
  id: string,
  states: ReleaseState | ReleaseState[],
  timeoutMs = 30_000,
  check?: (r: Release) => boolean,
): Promise<Release> {
  const want = Array.isArray(states) ? states : [states];
  const until = Date.now() + timeoutMs;
  let last: Release | undefined;
  while (Date.now() < until) {
    try {
      last = await rt.releases.get(id);
    } catch {
      // Redis may be restarting in a crash test.
    }
    if (last && want.includes(last.state) && (!check || check(last))) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `${id} did not reach ${want.join('|')} in ${timeoutMs} ms; it is ${last?.state} (${last?.error ?? ''})`,
  );
}
