// Redis connections: the one factory every ioredis connection of Ferry goes
// through. BullMQ workers need maxRetriesPerRequest: null (a blocking command
// must wait out a Redis restart rather than fail); plain store connections
// keep ioredis' default so a call fails fast and is retried by whoever made it.
//
// Where Redis is, as one string (so it passes through options and env alike):
//   redis://[:password@]host:port[/db]              one server (REDIS_URL)
//   redis+sentinel://[:password@]host:port,host:port[/name[/db]]
//                                                   Sentinel (BullMQ's documented HA setup):
//                                                   ioredis asks the sentinels for the
//                                                   primary of `name` and follows failovers.
// REDIS_SENTINELS=host:port,host:port with REDIS_SENTINEL_NAME (default "ferry")
// builds the sentinel form; REDIS_SENTINEL_PASSWORD is the sentinels' own password.
//
// The bot's command path is different: a person is waiting, and Slack gives
// 3 s. Its connection (commandConnection) never queues a command while Redis
// is away, gives up on one after COMMAND_TIMEOUT_MS and does not retry it, so
// the person is told at once that nothing was started. It keeps reconnecting
// in the background, so the next command works as soon as Redis is back.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Worker } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';

export const SENTINEL_SCHEME = 'redis+sentinel:';
const DEFAULT_MASTER_NAME = 'ferry';

export function redisUrl(env: NodeJS.ProcessEnv = process.env): string {
  if (env.REDIS_SENTINELS) {
    return `redis+sentinel://${env.REDIS_SENTINELS}/${env.REDIS_SENTINEL_NAME ?? DEFAULT_MASTER_NAME}`;
  }
  return env.REDIS_URL ?? 'redis://127.0.0.1:6390';
}

export interface SentinelTarget {
  sentinels: { host: string; port: number }[];
  name: string;
  password?: string;
  db?: number;
}

/** Parses a redis+sentinel:// URL; throws with what is wrong. */
export function parseSentinelUrl(url: string): SentinelTarget {
  const rest = url.slice(`${SENTINEL_SCHEME}//`.length);
  const at = rest.lastIndexOf('@', rest.indexOf('/') === -1 ? undefined : rest.indexOf('/'));
  const auth = at === -1 ? '' : rest.slice(0, at);
  const afterAuth = at === -1 ? rest : rest.slice(at + 1);
  const [hosts = '', name, db] = afterAuth.split('/');
  const sentinels = hosts
    .split(',')
    .filter(Boolean)
    .map((hp) => {
      const i = hp.lastIndexOf(':');
      const host = i === -1 ? hp : hp.slice(0, i);
      const port = i === -1 ? 26379 : Number(hp.slice(i + 1));
      if (!host || !Number.isInteger(port) || port <= 0) {
        throw new Error(`${url}: "${hp}" is not host:port`);
      }
      return { host, port };
    });
  if (sentinels.length === 0)
    throw new Error(`${url}: no sentinels (want redis+sentinel://host:port,host:port/name)`);
  const password = auth.includes(':') ? decodeURIComponent(auth.slice(auth.indexOf(':') + 1)) : undefined;
  return {
    sentinels,
    name: name || DEFAULT_MASTER_NAME,
    ...(password ? { password } : {}),
    ...(db ? { db: Number(db) } : {}),
  };
}

/** ioredis options for a Sentinel target: find the primary through the sentinels, follow failovers. */
function sentinelOptions(target: SentinelTarget, env: NodeJS.ProcessEnv): RedisOptions {
  return {
    sentinels: target.sentinels,
    name: target.name,
    ...(target.password ? { password: target.password } : {}),
    ...(target.db !== undefined ? { db: target.db } : {}),
    ...(env.REDIS_SENTINEL_PASSWORD ? { sentinelPassword: env.REDIS_SENTINEL_PASSWORD } : {}),
    // Reconnect as soon as the sentinels announce a new primary (+switch-master),
    // not only when the old one's socket dies.
    failoverDetector: true,
    // A former primary that came back as a replica answers writes with READONLY:
    // reconnect (to the primary the sentinels name) and resend the command.
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
  };
}

function connect(url: string, options: RedisOptions): Redis {
  if (url.startsWith(SENTINEL_SCHEME)) {
    return reviveAfterFailedResolve(
      new Redis({ ...sentinelOptions(parseSentinelUrl(url), process.env), ...options }),
    );
  }
  return new Redis(url, options);
}

/**
 * ioredis ends a Sentinel connection for good ("end", no more reconnects) when
 * asking the sentinels for the primary fails in a way it does not retry: a
 * reconnect during a failover that lands while the sentinel lookup is in
 * flight rejects it with "Connection is closed". A process that must outlive
 * failovers then reports "connection end" until it is restarted, and its
 * liveness (which never depends on Redis) does not restart it. So: unless this
 * process closed the connection itself (quit, disconnect), connect it again.
 */
const REVIVE_DELAY_MS = 500;
function reviveAfterFailedResolve(redis: Redis): Redis {
  let closing = false;
  const quit = redis.quit.bind(redis);
  const disconnect = redis.disconnect.bind(redis);
  redis.quit = ((...args: Parameters<Redis['quit']>) => {
    closing = true;
    return quit(...args);
  }) as Redis['quit'];
  redis.disconnect = (reconnect = false) => {
    if (!reconnect) closing = true;
    disconnect(reconnect);
  };
  redis.on('end', () => {
    if (closing) return;
    setTimeout(() => {
      if (!closing && redis.status === 'end') redis.connect().catch(() => {});
    }, REVIVE_DELAY_MS).unref();
  });
  return redis;
}

export function storeConnection(url = redisUrl()): Redis {
  return connect(url, { lazyConnect: false, enableOfflineQueue: true });
}

export function queueConnection(url = redisUrl()): Redis {
  return connect(url, { maxRetriesPerRequest: null, enableOfflineQueue: true });
}

/** How long one Redis command on the command path may take before the person is told. */
export const COMMAND_TIMEOUT_MS = 1000;

export function commandConnection(url = redisUrl()): Redis {
  const redis = connect(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: COMMAND_TIMEOUT_MS,
    // Reconnect for ever, at most every 2 s: the process outlives a Redis restart.
    retryStrategy: (times) => Math.min(times * 100, 2000),
  });
  // Without a listener ioredis prints every failed reconnect; the callers report what matters.
  redis.on('error', () => {});
  return redis;
}

/** The answer to a person whose command or click could not reach Redis. */
export const STORE_UNREACHABLE = "Ferry's store is unreachable; nothing was started. Try again in a minute.";

/** Whether an error means Redis could not be reached (as opposed to a refusal or a bug). */
export function isStoreUnreachable(err: unknown): boolean {
  const e = err as { message?: string; code?: string; name?: string } | undefined;
  if (!e) return false;
  if (e.name === 'MaxRetriesPerRequestError') return true;
  if (
    e.code &&
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTCONN', 'EHOSTUNREACH'].includes(e.code)
  )
    return true;
  return /Stream isn't writeable|enableOfflineQueue|Connection is closed|Command timed out|max retries per request|ECONNREFUSED/i.test(
    e.message ?? '',
  );
}

/** Replicas per connection, asked of the server at most every 30 s. */
const replicaCounts = new WeakMap<Redis, { replicas: number; at: number }>();

/**
 * Waits until a replica has every write made so far on `redis`, when the
 * server has replicas (Sentinel setups); a Redis without replicas answers at
 * once. For the few writes a failover must not lose because a job retried on
 * the new primary would repeat what they record — a release card posted to
 * chat. Replication is asynchronous: without this, a primary killed right
 * after the write can take it along, and the card is posted twice. Bounded by
 * `timeoutMs`: a lagging replica delays the message, never blocks it.
 */
export async function replicated(redis: Redis, timeoutMs = 1000): Promise<void> {
  let known = replicaCounts.get(redis);
  if (!known || Date.now() - known.at > 30_000) {
    const info = await redis.info('replication');
    known = { replicas: Number(/connected_slaves:(\d+)/.exec(info)?.[1] ?? 0), at: Date.now() };
    replicaCounts.set(redis, known);
  }
  if (known.replicas > 0) await redis.wait(1, timeoutMs);
}

/**
 * Closes a BullMQ worker once its blocking Redis client is not between reconnect attempts (waiting up
 * to `ms` for that). BullMQ's close disconnects that client and waits for its 'end'; ioredis, asked to
 * disconnect a client waiting to reconnect, drops the pending attempt and never ends it, so the close
 * would never return. Seen after a Redis restart (test/integration/bot-redis-down.test.ts: 2 of 6 runs
 * hung in the bot's stop). Once the attempt has run (within the 2 s retry above), the client is
 * connected, or has failed and ended, and the close goes on.
 */
export async function closeWorker(worker: Worker, ms = 10_000): Promise<void> {
  const client = await worker.backend.blockingClient?.catch(() => undefined);
  const until = Date.now() + ms;
  while (client?.status === 'reconnecting' && Date.now() < until) await sleep(50);
  await worker.close();
}
