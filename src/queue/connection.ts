// Redis connections. BullMQ workers need maxRetriesPerRequest: null (a
// blocking command must wait out a Redis restart rather than fail); plain
// store connections keep ioredis' default so a call fails fast and is retried
// by whoever made it.
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
