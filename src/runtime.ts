// Wiring: one place that builds Ferry's parts from the environment — config,
// Redis connections, stores, queues, lifecycle — for the bot, the worker, the
// watcher and the tests. Nothing here decides anything.
import type { Redis } from 'ioredis';
import type { JobContext } from '../jobs/context.ts';
import { loadOnce } from './concurrency.ts';
import { LiveConfig } from './config/live.ts';
import { type ConfigProblem, formatProblem } from './config/load.ts';
import type { FerryConfig } from './domain/config.ts';
import { Lifecycle } from './domain/lifecycle.ts';
import type { StepRunners } from './domain/ports.ts';
import { type Logger, logger } from './logging.ts';
import type {
  Adopter,
  LogReader,
  OperationQueue,
  OperationRunners,
  Rebuilder,
  RollbackPlanner,
} from './ports.ts';
import { QueueAnnouncer } from './queue/announcer.ts';
import { commandConnection, queueConnection, redisUrl, storeConnection } from './queue/connection.ts';
import { BullScheduler } from './queue/scheduler.ts';
import { ReleaseStore } from './store/releases.ts';
import { VersionStore } from './store/versions.ts';

/** The ports of commands/ that live outside the lifecycle core (commands/command.ts CommandPorts). */
export interface ServicePorts {
  config: Runtime['config'];
  lifecycle: Lifecycle;
  releases: ReleaseStore;
  versions: VersionStore;
  announcer: QueueAnnouncer;
  operations: OperationQueue;
  rollbacks: RollbackPlanner;
  logs: LogReader;
  adoptions: Adopter;
  rebuilds: Rebuilder;
}

export interface Runtime {
  /** The running config: read it at the moment it is needed, it changes when the config files do. */
  config: () => FerryConfig;
  /** Its holder, to subscribe to changes (the watcher's namespaces) or reload by hand. */
  live: LiveConfig;
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
  /** Runs `fn` when the runtime closes (queues opened later, by commandServices). */
  onClose(fn: () => Promise<void>): void;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  /** A config, a config file or directory, or a holder of one. */
  config: FerryConfig | string | LiveConfig;
  /**
   * Watch the config file or directory and apply valid changes without a restart; a refused
   * change is logged and posted to `ops.channel` (once per content, whichever process sees it first).
   */
  watchConfig?: boolean;
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
  const log = logger(opts.name ?? 'ferry');
  // Problems of a refused change go out through `report`, set once the announcer exists.
  let report: (problems: ConfigProblem[], digest: string) => Promise<void> = async () => {};
  const live =
    opts.config instanceof LiveConfig
      ? opts.config
      : typeof opts.config === 'string'
        ? LiveConfig.load(opts.config, {
            ...(process.env.FERRY_CONFIG_POLL_MS ? { pollMs: Number(process.env.FERRY_CONFIG_POLL_MS) } : {}),
            onApplied: (c, digest) =>
              log.info({ digest: digest.slice(0, 12), apps: Object.keys(c.apps).length }, 'config reloaded'),
            onRefused: (problems, digest) => report(problems, digest),
            onError: (err) => log.warn({ err: err.message }, 'config watch'),
          })
        : LiveConfig.fixed(opts.config);
  const config = live.get;
  const url = opts.redisUrl ?? redisUrl();
  const store = storeConnection(url);
  const queue = queueConnection(url);
  const fast = opts.failFast ? commandConnection(url) : undefined;
  const releases = new ReleaseStore(fast ?? store, opts.prefix ?? 'ferry');
  const backgroundReleases = fast ? new ReleaseStore(store, opts.prefix ?? 'ferry') : releases;
  const versions = new VersionStore(fast ?? store, opts.prefix ?? 'ferry');
  const scheduler = new BullScheduler(fast ?? queue, opts.prefix);
  const announcer = new QueueAnnouncer(fast ?? queue, opts.prefix, () => config().redaction);
  const lifecycle = new Lifecycle({ config, releases, versions, scheduler, announcer });
  report = (problems, digest) =>
    reportRefusedConfig({ log, store, announcer, prefix: opts.prefix ?? 'ferry', config }, problems, digest);
  if (opts.watchConfig) live.watch();
  const closers: (() => Promise<void>)[] = [];
  return {
    config,
    live,
    store,
    queue,
    releases,
    backgroundReleases,
    versions,
    scheduler,
    announcer,
    lifecycle,
    prefix: opts.prefix,
    log,
    onClose(fn) {
      closers.push(fn);
    },
    async close() {
      for (const fn of closers.splice(0)) await fn();
      live.close();
      await scheduler.close();
      await announcer.close();
      store.disconnect();
      queue.disconnect();
      fast?.disconnect();
    },
  };
}

/**
 * A refused config change: logged by every process that sees it, and posted to the ops channel of the
 * running config by the first of them (a Redis SET NX per content), so the bot, the workers and the
 * watchers do not each post it, and a content refused once is not posted again.
 */
export async function reportRefusedConfig(
  d: {
    log: Logger;
    store: Redis;
    announcer: QueueAnnouncer;
    prefix: string;
    config: () => FerryConfig;
  },
  problems: ConfigProblem[],
  digest: string,
): Promise<void> {
  const lines = problems.map(formatProblem);
  d.log.error({ problems: lines }, 'config change refused; the running config stays');
  const channel = d.config().ops?.channel;
  if (!channel) return;
  const first = await d.store.set(`${d.prefix}:config:refused:${digest}`, '1', 'EX', 7 * 86_400, 'NX');
  if (first !== 'OK') return;
  await d.announcer.announce({
    kind: 'message',
    channel,
    text: `A config change was refused: ${problems.length} problem${problems.length === 1 ? '' : 's'}. The running config stays until the files are fixed.`,
    snippet: lines.join('\n'),
  });
}

export function jobContext(
  rt: Runtime,
  runners: StepRunners,
  pollMs = 500,
  operations?: OperationRunners,
): JobContext {
  return {
    config: rt.config,
    lifecycle: rt.lifecycle,
    releases: rt.releases,
    versions: rt.versions,
    runners,
    announcer: rt.announcer,
    pollMs,
    locks: rt.releases,
    ...(operations ? { operations } : {}),
  };
}

/** The work of operations (rollback of an app, image sync) on the real clusters and registries. */
export async function operationRunners(rt: Runtime): Promise<OperationRunners> {
  const [{ KubeRollbacks }, { kubeClients }, { syncVersion }] = await Promise.all([
    import('./kube/rollback-service.ts'),
    import('./kube/client.ts'),
    import('./runners/sync-service.ts'),
  ]);
  const rollback = new KubeRollbacks({
    config: rt.config,
    versions: rt.versions,
    releases: rt.releases,
    clients: (region) => kubeClients(rt.config(), region),
  });
  return { rollback, sync: (req) => syncVersion(rt.config(), rt.versions, req) };
}

/** The step runners that build, sync and deploy for real (loaded only by the processes that run steps). */
export async function realStepRunners(rt: Runtime): Promise<StepRunners> {
  const { realRunners } = await import('./runners/real.ts');
  return await realRunners(rt);
}

/**
 * What the chat commands may call beyond the lifecycle, with the parts that
 * talk to clusters and registries loaded only when a process asks for them.
 * Rollback and sync are queued for the worker (ops queue); the bot reads the
 * stores and the clusters to check a request before queueing it.
 */
export async function commandServices(rt: Runtime): Promise<ServicePorts> {
  const [{ BullOperationQueue }, { StackRebuildService }, { resolveImage }, { knownRegistries }] =
    await Promise.all([
      import('./queue/operations.ts'),
      import('./runners/rebuild-service.ts'),
      import('./build/stack.ts'),
      import('./runners/real.ts'),
    ]);
  const operations = new BullOperationQueue(rt.queue, rt.prefix);
  rt.onClose(() => operations.close());
  // The services that read the clusters load with the first command that needs one (logs, rollback,
  // adopt), not with the bot: the Kubernetes client is some 870 modules and about 35 MiB resident (the
  // bot at 9,000 apps: 153 MiB idle with it, 118 without), and most of a bot's day is requests,
  // approvals and status, which read only Redis. A load that fails is tried again by the next command.
  const loaded = loadOnce(() => clusterServices(rt));
  return {
    config: rt.config,
    lifecycle: rt.lifecycle,
    releases: rt.releases,
    versions: rt.versions,
    announcer: rt.announcer,
    operations,
    rollbacks: { check: async (request) => (await loaded()).rollbacks.check(request) },
    logs: { read: async (request, actor, ctx) => (await loaded()).logs.read(request, actor, ctx) },
    adoptions: { request: async (request, actor) => (await loaded()).adoptions.request(request, actor) },
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

async function clusterServices(rt: Runtime): Promise<Pick<ServicePorts, 'rollbacks' | 'logs' | 'adoptions'>> {
  const [{ KubeRollbacks }, { kubeClients }, { KubeLogService }, { KubeAdoptionService }] = await Promise.all(
    [
      import('./kube/rollback-service.ts'),
      import('./kube/client.ts'),
      import('./logs/service.ts'),
      import('./kube/adopt.ts'),
    ],
  );
  const clients = (region: string) => kubeClients(rt.config(), region);
  return {
    rollbacks: new KubeRollbacks({
      config: rt.config,
      versions: rt.versions,
      releases: rt.releases,
      clients,
    }),
    logs: new KubeLogService({ config: rt.config, announcer: rt.announcer, releases: rt.releases }),
    adoptions: new KubeAdoptionService({ config: rt.config, releases: rt.releases, clients }),
  };
}
