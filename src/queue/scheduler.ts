// The BullMQ side of the lifecycle: a release's work is one flow — build,
// then sync, then one deploy job per region (in order), then finish. In a
// flow the parent runs after its children, so the chain is built inside out.
import { type FlowJob, FlowProducer, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { WorkScheduler } from '../domain/ports.ts';
import type { Release } from '../domain/release.ts';
import type { RebuildBatch, RebuildScheduler } from '../runners/rebuild-service.ts';
import { jobId, QUEUES } from './names.ts';

export interface StepData {
  releaseId: string;
  step: 'build' | 'sync' | 'deploy' | 'finish';
  /** For deploy: the regions this job rolls out, in order (several when the plan runs them in parallel). */
  regions?: string[];
}

export type TimerData =
  | { kind: 'expire'; releaseId: string }
  /** A stack rebuild's releases still waiting for a free slot (src/runners/rebuild-service.ts). */
  | { kind: 'rebuild'; batch: RebuildBatch };

/** A release to build, sync and pull ahead while it waits (jobs/prepare.ts). */
export interface PrepareData {
  releaseId: string;
}

export interface RollbackData {
  releaseId: string;
  reason: string;
}

/** Transient failures (network, registry 5xx) retry with backoff before the release fails. */
export const STEP_ATTEMPTS = 4;
const stepOpts = (priority: number) => ({
  attempts: STEP_ATTEMPTS,
  backoff: { type: 'exponential' as const, delay: 2000 },
  priority,
  removeOnComplete: { age: 7 * 24 * 3600 },
  removeOnFail: { age: 30 * 24 * 3600 },
  failParentOnFailure: true,
});

export function releaseFlow(release: Release, prefix?: string): FlowJob {
  const priority = release.plan.priority.value;
  const node = (step: StepData['step'], extra: Partial<StepData>, children?: FlowJob[]): FlowJob => ({
    name: step,
    queueName: QUEUES.release,
    data: { releaseId: release.id, step, ...extra } satisfies StepData,
    opts: {
      ...stepOpts(priority),
      jobId: jobId(release.id, extra.regions ? `deploy-${extra.regions.join('+')}` : step),
    },
    ...(prefix ? { prefix } : {}),
    ...(children ? { children } : {}),
  });
  let chain: FlowJob = node('build', {});
  chain = node('sync', {}, [chain]);
  const regions = release.regions;
  if (release.plan.regionOrder.value === 'parallel') {
    chain = node('deploy', { regions }, [chain]);
  } else {
    for (const r of regions) chain = node('deploy', { regions: [r] }, [chain]);
  }
  return node('finish', {}, [chain]);
}

export class BullScheduler implements WorkScheduler, RebuildScheduler {
  private readonly flows: FlowProducer;
  private readonly timers: Queue<TimerData>;
  private readonly rollbacks: Queue<RollbackData>;
  private readonly prepares: Queue<PrepareData>;
  private readonly prefix: string | undefined;

  constructor(connection: Redis, prefix?: string) {
    this.prefix = prefix;
    this.flows = new FlowProducer({ connection, ...(prefix ? { prefix } : {}) });
    this.timers = new Queue(QUEUES.timers, { connection, ...(prefix ? { prefix } : {}) });
    this.rollbacks = new Queue(QUEUES.release, { connection, ...(prefix ? { prefix } : {}) });
    this.prepares = new Queue(QUEUES.prepare, { connection, ...(prefix ? { prefix } : {}) });
  }

  async schedulePrepare(release: Release): Promise<void> {
    await this.prepares.add(
      'prepare',
      { releaseId: release.id },
      {
        jobId: jobId(release.id, 'prepare'),
        // A release that waits in line asks twice (queued, then awaiting approval): one prepare is enough.
        attempts: 2,
        backoff: { type: 'exponential', delay: 5000 },
        removeOnComplete: { age: 7 * 24 * 3600 },
        removeOnFail: { age: 7 * 24 * 3600 },
      },
    );
  }

  async startFlow(release: Release): Promise<void> {
    await this.flows.add(releaseFlow(release, this.prefix));
  }

  async scheduleExpiry(release: Release, at: number): Promise<void> {
    await this.timers.add(
      'expire',
      { kind: 'expire', releaseId: release.id },
      {
        jobId: jobId(release.id, 'expire'),
        delay: Math.max(0, at - Date.now()),
        removeOnComplete: true,
        removeOnFail: 100,
      },
    );
  }

  async scheduleRebuild(batch: RebuildBatch): Promise<void> {
    await this.timers.add(
      'rebuild',
      { kind: 'rebuild', batch },
      {
        jobId: `rebuild.${batch.id}`,
        delay: 1000,
        // A Redis hiccup must not drop the releases still waiting.
        attempts: STEP_ATTEMPTS,
        backoff: { type: 'exponential', delay: 2000 },
        removeOnComplete: true,
        removeOnFail: 100,
      },
    );
  }

  async startRollback(release: Release, reason: string): Promise<void> {
    await this.rollbacks.add(
      'rollback',
      { releaseId: release.id, reason },
      {
        jobId: jobId(release.id, 'rollback'),
        attempts: STEP_ATTEMPTS,
        backoff: { type: 'exponential', delay: 2000 },
        priority: 1,
      },
    );
  }

  async close(): Promise<void> {
    await Promise.all([
      this.flows.close(),
      this.timers.close(),
      this.rollbacks.close(),
      this.prepares.close(),
    ]);
  }
}
