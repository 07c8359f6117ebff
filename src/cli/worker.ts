// `ferry worker`: runs the release steps and timers until SIGTERM/SIGINT,
// then stops taking jobs, hands unfinished ones back to the queue and exits.

import type { StepRunners } from '../domain/ports.ts';
import {
  Health,
  healthFromEnv,
  kubeReadyForRegions,
  queueDepthGauge,
  readinessUsesKube,
  redisReady,
} from '../health.ts';
import type { OperationRunners } from '../ports.ts';
import { startOpsServer } from '../queue/ops-server.ts';
import { startWorkers } from '../queue/worker.ts';
import { createRuntime, jobContext, operationRunners, type Runtime, realStepRunners } from '../runtime.ts';
import type { CliIO, ProcessOptions } from './io.ts';

/** What runs the steps. `ferry worker` uses the real runners; a test harness passes its own. */
export interface WorkerParts {
  runners: (rt: Runtime) => Promise<StepRunners>;
  /** Whether the runners talk to the clusters, so readiness checks them (FERRY_READY_KUBE overrides). */
  runnersUseKube: boolean;
  /** The work of rollback and sync of an app (the ops queue); none: those jobs fail with a reason. */
  operations?: (rt: Runtime) => Promise<OperationRunners | undefined>;
}

export function run(opts: ProcessOptions, io: CliIO): Promise<number> {
  return runWorker(opts, io, {
    runners: realStepRunners,
    runnersUseKube: true,
    operations: operationRunners,
  });
}

export async function runWorker(opts: ProcessOptions, io: CliIO, parts: WorkerParts): Promise<number> {
  const rt = createRuntime({
    config: opts.configPath,
    name: 'worker',
    watchConfig: process.env.FERRY_CONFIG_WATCH !== '0',
    ...(process.env.FERRY_PREFIX ? { prefix: process.env.FERRY_PREFIX } : {}),
  });
  const runners = await parts.runners(rt);
  const lockDuration = Number(process.env.FERRY_LOCK_MS ?? 30_000);
  const operations = await parts.operations?.(rt);
  const ctx = jobContext(rt, runners, Number(process.env.FERRY_POLL_MS ?? 500), operations);
  const workers = startWorkers(ctx, {
    connection: rt.queue,
    ...(rt.prefix ? { prefix: rt.prefix } : {}),
    lockDuration,
    ...(process.env.FERRY_MAX_STALLS ? { maxStalledCount: Number(process.env.FERRY_MAX_STALLS) } : {}),
    ...(process.env.FERRY_PREPARE_CONCURRENCY
      ? { prepareConcurrency: Number(process.env.FERRY_PREPARE_CONCURRENCY) }
      : {}),
    ...(process.env.POD_NAME ? { name: process.env.POD_NAME } : {}),
    log: rt.log,
  });
  // Bring every stored release back in step: a crash may have left one between two steps.
  const recovered = await rt.lifecycle.reconcile();
  if (recovered.length) rt.log.info({ recovered }, 'reconciled releases after start');
  const timer = setInterval(
    () => {
      rt.lifecycle
        .reconcile()
        .catch((err) => rt.log.warn({ err: (err as Error).message }, 'reconcile failed'));
    },
    Number(process.env.FERRY_RECONCILE_MS ?? 30_000),
  );
  const depth = queueDepthGauge(rt.queue, rt.prefix);
  const health = new Health({
    alive: [() => workers.notRunning()],
    ready: [
      redisReady(rt.store),
      ...(readinessUsesKube(parts.runnersUseKube) ? kubeReadyForRegions(rt.config()) : []),
    ],
    beforeMetrics: () => depth.refresh(),
  });
  const healthServer = await healthFromEnv(health, 3102, (m) => io.err(`ferry worker: ${m}`));
  if (healthServer) io.err(`ferry worker: /healthz /readyz /metrics on ${healthServer.url}`);
  const ops = await startOpsServer(rt.queue, {
    port: Number(process.env.FERRY_OPS_PORT ?? 3100),
    ...(process.env.FERRY_OPS_HOST ? { host: process.env.FERRY_OPS_HOST } : {}),
    ...(process.env.FERRY_OPS_TOKEN ? { token: process.env.FERRY_OPS_TOKEN } : {}),
    ...(rt.prefix ? { prefix: rt.prefix } : {}),
  });
  io.err(
    `ferry worker: queue dashboard ${ops.url}/queues (${ops.readOnly ? 'read-only: no FERRY_OPS_TOKEN' : 'changes need the FERRY_OPS_TOKEN bearer'}), metrics ${ops.url}/metrics`,
  );
  io.err(`ferry worker: running (redis ${process.env.REDIS_URL ?? 'default'})`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  clearInterval(timer);
  rt.log.info('shutting down');
  await workers.close();
  await ops.close();
  await healthServer?.close();
  await depth.close();
  await rt.close();
  return 0;
}
