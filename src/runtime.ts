// Wiring: one place that builds Ferry's parts from the environment — config,
// Redis connections, stores, queues, lifecycle — for the bot, the worker, the
// watcher and the tests. Nothing here decides anything.
import type { Redis } from 'ioredis';
import type { JobContext } from '../jobs/context.ts';
import { loadConfigOrThrow } from './config/load.ts';
import type { FerryConfig } from './config/schema.ts';
import { Lifecycle } from './domain/lifecycle.ts';
import type { StepRunners } from './domain/ports.ts';
import { type Logger, logger } from './logging.ts';
import { QueueAnnouncer } from './queue/announcer.ts';
import { commandConnection, queueConnection, redisUrl, storeConnection } from './queue/connection.ts';
import { BullScheduler } from './queue/scheduler.ts';
import { ReleaseStore } from './store/releases.ts';
import { VersionStore } from './store/versions.ts';

export interface Runtime {
  config: () => FerryConfig;
  store: Redis;
  queue: Redis;
  /** The stores, queues and lifecycle below run on this connection (fail-fast on the bot's command path). */
  releases: ReleaseStore;
  /** Releases read by background consumers (the notifier): on `store`, which waits out a Redis restart. */
  backgroundReleases: ReleaseStore;
  versions: VersionStore;
  scheduler: BullScheduler;
  announcer: QueueAnnouncer;
  lifecycle: Lifecycle;
  prefix: string | undefined;
  log: Logger;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  config: FerryConfig | string;
  redisUrl?: string;
  /** BullMQ key prefix and store prefix, so tests can share one Redis. */
  prefix?: string;
  name?: string;
  /**
   * The bot: releases, versions, the scheduler, the announcer and the lifecycle use a connection that
   * fails fast when Redis is away (commandConnection), so a person gets an answer within Slack's 3 s.
   * `store` and `queue` stay patient for the background consumers.
   */
  failFast?: boolean;
}

export function createRuntime(opts: RuntimeOptions): Runtime {
  const config = typeof opts.config === 'string' ? loadConfigOrThrow(opts.config) : opts.config;
  const url = opts.redisUrl ?? redisUrl();
  const store = storeConnection(url);
  const queue = queueConnection(url);
  const fast = opts.failFast ? commandConnection(url) : undefined;
  const releases = new ReleaseStore(fast ?? store, opts.prefix ?? 'ferry');
  const backgroundReleases = fast ? new ReleaseStore(store, opts.prefix ?? 'ferry') : releases;
  const versions = new VersionStore(fast ?? store, opts.prefix ?? 'ferry');
  const scheduler = new BullScheduler(fast ?? queue, opts.prefix);
  const announcer = new QueueAnnouncer(fast ?? queue, opts.prefix, () => config.redaction);
  const lifecycle = new Lifecycle({ config: () => config, releases, versions, scheduler, announcer });
  return {
    config: () => config,
    store,
    queue,
    releases,
    backgroundReleases,
    versions,
    scheduler,
    announcer,
    lifecycle,
    prefix: opts.prefix,
    log: logger(opts.name ?? 'ferry'),
    async close() {
      await scheduler.close();
      await announcer.close();
      store.disconnect();
      queue.disconnect();
      fast?.disconnect();
    },
  };
}

export function jobContext(rt: Runtime, runners: StepRunners, pollMs = 500): JobContext {
  return {
    config: rt.config,
    lifecycle: rt.lifecycle,
    releases: rt.releases,
    versions: rt.versions,
    runners,
    announcer: rt.announcer,
    pollMs,
  };
}

/** The step runners that build, sync and deploy for real (loaded only by the processes that run steps). */
export async function realStepRunners(rt: Runtime): Promise<StepRunners> {
  const { realRunners } = await import('./runners/real.ts');
  return await realRunners(rt);
}

/**
 * Everything the chat commands need, with the parts that talk to clusters and
 * registries (rollback, logs, sync) loaded only when a process asks for them.
 */
export async function commandServices(
  rt: Runtime,
): Promise<import('../commands/handler.ts').CommandServices> {
  const [
    { KubeRollbackService },
    { kubeClients },
    { KubeLogService },
    { RegistrySyncService },
    { KubeAdoptionService },
    { StackRebuildService },
    { resolveImage },
    { knownRegistries },
  ] = await Promise.all([
    import('./kube/rollback-service.ts'),
    import('./kube/client.ts'),
    import('./logs/service.ts'),
    import('./runners/sync-service.ts'),
    import('./kube/adopt.ts'),
    import('./runners/rebuild-service.ts'),
    import('./build/stack.ts'),
    import('./runners/real.ts'),
  ]);
  return {
    config: rt.config,
    lifecycle: rt.lifecycle,
    releases: rt.releases,
    versions: rt.versions,
    announcer: rt.announcer,
    rollbacks: new KubeRollbackService({
      config: rt.config,
      versions: rt.versions,
      releases: rt.releases,
      announcer: rt.announcer,
      clients: (region) => kubeClients(rt.config(), region),
    }),
    logs: new KubeLogService({ config: rt.config, announcer: rt.announcer, releases: rt.releases }),
    syncs: new RegistrySyncService(rt.config, rt.versions, rt.announcer),
    adoptions: new KubeAdoptionService({
      config: rt.config,
      releases: rt.releases,
      clients: (region) => kubeClients(rt.config(), region),
    }),
    rebuilds: new StackRebuildService({
      config: rt.config,
      lifecycle: rt.lifecycle,
      releases: rt.releases,
      versions: rt.versions,
      scheduler: rt.scheduler,
      resolveStack: (stack) =>
        resolveImage(rt.config().stacks[stack]?.image ?? '', knownRegistries(rt.config())),
    }),
  };
}
