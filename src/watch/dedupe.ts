// Alert deduplication on Redis. Two levels:
//
// 1. Occurrences: one OOM kill is seen several times — in the pod's status on
//    every update and re-list, as an Event, and by the node agent. Each
//    sighting carries an occurrence id (e.g. the killed container's id); only
//    the first sighting of an id counts.
// 2. Alerts: occurrences of the same workload (region/namespace/owner/container)
//    within the dedupe window (sliding: measured from the last occurrence) are
//    ONE alert with a count. The alert has a stable key, so the chat renderer
//    edits the message it posted first instead of posting another.
import type { Redis } from 'ioredis';

export interface AlertState {
  /** Stable for the life of the alert: the renderer edits the message posted for it. */
  key: string;
  count: number;
  firstAt: number;
  lastAt: number;
  /** True when this occurrence started a new alert. */
  fresh: boolean;
}

// KEYS: seen key, alert hash   ARGV: now, window ms, new key, seen ttl ms
// Returns {} when the occurrence was seen already; else key, count, first, last, fresh.
const RECORD = `
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[4]) == false then return {} end
local now = tonumber(ARGV[1])
local last = tonumber(redis.call('HGET', KEYS[2], 'last') or '-1')
if last >= 0 and now - last <= tonumber(ARGV[2]) then
  local count = redis.call('HINCRBY', KEYS[2], 'count', 1)
  if now > last then redis.call('HSET', KEYS[2], 'last', ARGV[1]) else now = last end
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]) * 2 + 60000)
  return {redis.call('HGET', KEYS[2], 'key'), tostring(count), redis.call('HGET', KEYS[2], 'first'), tostring(now), '0'}
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'key', ARGV[3], 'count', 1, 'first', ARGV[1], 'last', ARGV[1])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]) * 2 + 60000)
return {ARGV[3], '1', ARGV[1], ARGV[1], '1'}
`;

export class AlertDedupe {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, prefix = 'ferry') {
    this.redis = redis;
    this.prefix = prefix;
  }

  /**
   * Records one sighting. Returns undefined if this occurrence was recorded
   * before (by any process), else the alert it belongs to with its count.
   */
  async record(
    workload: string,
    occurrence: string,
    windowMs: number,
    now = Date.now(),
  ): Promise<AlertState | undefined> {
    const newKey = `oom:${workload}:${now.toString(36)}`;
    const seenTtl = Math.max(windowMs * 4, 24 * 3_600_000);
    const r = (await this.redis.eval(
      RECORD,
      2,
      `${this.prefix}:alerts:seen:${occurrence}`,
      `${this.prefix}:alerts:state:${workload}`,
      String(now),
      String(windowMs),
      newKey,
      String(seenTtl),
    )) as string[];
    if (!r || r.length === 0) return undefined;
    const [key, count, first, last, fresh] = r as [string, string, string, string, string];
    return { key, count: Number(count), firstAt: Number(first), lastAt: Number(last), fresh: fresh === '1' };
  }

  /** The open alert of a workload, if its window has not passed. */
  async current(workload: string, windowMs: number, now = Date.now()): Promise<AlertState | undefined> {
    const h = await this.redis.hgetall(`${this.prefix}:alerts:state:${workload}`);
    if (!h.key || now - Number(h.last) > windowMs) return undefined;
    return {
      key: h.key,
      count: Number(h.count),
      firstAt: Number(h.first),
      lastAt: Number(h.last),
      fresh: false,
    };
  }

  /** Whether an occurrence was recorded (e.g. to skip work for a known kill). */
  async seen(occurrence: string): Promise<boolean> {
    return (await this.redis.exists(`${this.prefix}:alerts:seen:${occurrence}`)) === 1;
  }
}
