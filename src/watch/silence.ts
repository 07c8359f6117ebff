// Silencing alerts: the Silence button (and `ferry watch` itself) use this.
// A silence is a Redis key with a TTL, so it ends by itself and survives
// restarts of every process.
//
//   const silences = new Silences(redis, prefix);
//   await silences.silence(alert.silenceKey, durationMs('1h'), 'U_ALICE');
//   await silences.isSilenced(alert.silenceKey);   // true for the next hour
import type { Redis } from 'ioredis';

export interface SilenceInfo {
  key: string;
  by: string;
  at: number;
  until: number;
}

export class Silences {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, prefix = 'ferry') {
    this.redis = redis;
    this.prefix = prefix;
  }

  private k(key: string): string {
    return `${this.prefix}:silence:${key}`;
  }

  /** Silences alerts with this `silenceKey` for `durationMs` (replaces an earlier silence of the key). */
  async silence(key: string, durationMs: number, by: string, now = Date.now()): Promise<SilenceInfo> {
    if (!(durationMs > 0)) throw new Error(`silence duration must be positive, not ${durationMs}`);
    const info: SilenceInfo = { key, by, at: now, until: now + durationMs };
    await this.redis.set(this.k(key), JSON.stringify(info), 'PX', Math.ceil(durationMs));
    return info;
  }

  /** Ends a silence early; true if there was one. */
  async unsilence(key: string): Promise<boolean> {
    return (await this.redis.del(this.k(key))) > 0;
  }

  async isSilenced(key: string): Promise<boolean> {
    return (await this.redis.exists(this.k(key))) === 1;
  }

  /** The silence in force for this key, if any. */
  async get(key: string): Promise<SilenceInfo | undefined> {
    const v = await this.redis.get(this.k(key));
    return v ? (JSON.parse(v) as SilenceInfo) : undefined;
  }
}
