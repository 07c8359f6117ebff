// Redis connections. BullMQ workers need maxRetriesPerRequest: null (a
// blocking command must wait out a Redis restart rather than fail); plain
// store connections keep ioredis' default so a call fails fast and is retried
// by whoever made it.
//
// The bot's command path is different: a person is waiting, and Slack gives
// 3 s. Its connection (commandConnection) never queues a command while Redis
// is away, gives up on one after COMMAND_TIMEOUT_MS and does not retry it, so
// the person is told at once that nothing was started. It keeps reconnecting
// in the background, so the next command works as soon as Redis is back.
import { Redis } from 'ioredis';

export function redisUrl(): string {
  return process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';
}

export function storeConnection(url = redisUrl()): Redis {
  return new Redis(url, { lazyConnect: false, enableOfflineQueue: true });
}

export function queueConnection(url = redisUrl()): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableOfflineQueue: true });
}

/** How long one Redis command on the command path may take before the person is told. */
export const COMMAND_TIMEOUT_MS = 1000;

export function commandConnection(url = redisUrl()): Redis {
  const redis = new Redis(url, {
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
