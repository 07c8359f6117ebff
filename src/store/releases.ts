// Releases, their audit trail and the one-release-per-app-and-environment
// lock, on Redis. Every transition is committed by one Lua script — the new
// state, the audit entry, and the lock hand-over to the next release in line
// happen together or not at all — and only then announced.
import type { Redis } from 'ioredis';
import type {
  CommitGuard,
  CommitResult,
  LockInfo,
  LockResult,
  OperationLocks,
  ReleaseRepository,
} from '../domain/ports.ts';
import {
  type AuditEntry,
  hasEnded,
  holdsLock,
  type Release,
  type ReleaseEvent,
  TERMINAL,
  transition,
} from '../domain/release.ts';
import { metrics } from '../metrics.ts';

const TERMINAL_LIST = [...TERMINAL].join(',');

// KEYS: release, audit list, audit stream, active set, lock, wait zset, lock info, approvers set
// ARGV: expected rev, data, new rev, state, audit json, ended?, release id, holds-lock?, now, approver
// The lock info hash says who holds the lock and since when, for status.
// An approval is committed only if the approver was not yet in the release's
// approvers set: the domain refuses a second approval too, and this makes it
// hold even against a caller that skips the domain.
const COMMIT = `
local cur = redis.call('HGET', KEYS[1], 'rev')
if cur ~= ARGV[1] then return {'conflict', cur or ''} end
if ARGV[10] ~= '' and redis.call('SADD', KEYS[8], ARGV[10]) == 0 then return {'duplicate', ARGV[10]} end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'rev', ARGV[3], 'state', ARGV[4], 'ended', ARGV[6])
redis.call('RPUSH', KEYS[2], ARGV[5])
redis.call('XADD', KEYS[3], '*', 'entry', ARGV[5])
local handed = ''
if ARGV[6] == '1' then
  redis.call('SREM', KEYS[4], ARGV[7])
  redis.call('ZREM', KEYS[6], ARGV[7])
  if redis.call('GET', KEYS[5]) == ARGV[7] then
    redis.call('DEL', KEYS[5], KEYS[7])
    local nxt = redis.call('ZRANGE', KEYS[6], 0, 0)
    if nxt[1] then
      redis.call('ZREM', KEYS[6], nxt[1])
      redis.call('SET', KEYS[5], nxt[1])
      redis.call('HSET', KEYS[7], 'holder', nxt[1], 'since', ARGV[9])
      handed = nxt[1]
    end
  end
elseif ARGV[8] == '1' and not redis.call('GET', KEYS[5]) then
  -- never take a lock another release holds; only re-assert a free one
  redis.call('SET', KEYS[5], ARGV[7])
  redis.call('HSET', KEYS[7], 'holder', ARGV[7], 'since', ARGV[9])
end
return {'ok', handed}
`;

// KEYS: release, audit list, audit stream, active set, app index, seq
// ARGV: data, state, audit json, id, score
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'rev', '1', 'state', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('XADD', KEYS[3], '*', 'entry', ARGV[3])
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[4])
return 1
`;

// Takes the lock or joins the line. A lock whose holder has ended (a final
// state, or failed before changing anything) or vanished is stale — e.g. its
// process crashed between commit and hand-over — and is taken over rather
// than waited on forever. A holder that failed half-way keeps the lock.
// KEYS: lock, wait zset, lock info   ARGV: id, score, release key prefix, terminal states, now
const ACQUIRE = `
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  local st = redis.call('HGET', ARGV[3] .. holder, 'state')
  local ended = (not st) or redis.call('HGET', ARGV[3] .. holder, 'ended') == '1'
  if st then
    for s in string.gmatch(ARGV[4], '[^,]+') do if s == st then ended = true end end
  end
  if not ended then
    redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1])
    return {'waiting', redis.call('ZRANK', KEYS[2], ARGV[1]) + 1, holder}
  end
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0)
if (not holder or holder ~= ARGV[1]) and first[1] and first[1] ~= ARGV[1] then
  -- someone was already in line: the lock goes to them, this one waits
  redis.call('ZREM', KEYS[2], first[1])
  redis.call('SET', KEYS[1], first[1])
  redis.call('HSET', KEYS[3], 'holder', first[1], 'since', ARGV[5])
  redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1])
  return {'waiting', redis.call('ZRANK', KEYS[2], ARGV[1]) + 1, first[1]}
end
if holder ~= ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[3], 'holder', ARGV[1], 'since', ARGV[5])
end
redis.call('ZREM', KEYS[2], ARGV[1])
return {'acquired', 0, ''}
`;

// Takes an app and environment's lock for an operation (a rollback or sync
// outside a release): only when no live release holds it and none waits for
// it, so an operation never jumps the line. The operation's marker hash sits
// where a release's would, with a state that is not final, so a release asking
// meanwhile waits in line behind it; the marker expires (KEYS[4]) so a worker
// that died mid-operation frees the lock after the operation's deadline.
// KEYS: lock, wait zset, lock info, marker   ARGV: id, release key prefix, terminal states, now, ttl s
// Returns nil when taken, else who holds or waits for the lock.
const ACQUIRE_OPERATION = `
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  local st = redis.call('HGET', ARGV[2] .. holder, 'state')
  local ended = (not st) or redis.call('HGET', ARGV[2] .. holder, 'ended') == '1'
  if st then
    for s in string.gmatch(ARGV[3], '[^,]+') do if s == st then ended = true end end
  end
  if not ended then return holder end
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0)
if first[1] then return first[1] end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], 'holder', ARGV[1], 'since', ARGV[4])
redis.call('HSET', KEYS[4], 'state', 'operating', 'ended', '0')
redis.call('EXPIRE', KEYS[4], ARGV[5])
return false
`;

// Frees an operation's lock: hands it to the first release in line (returned,
// for the lifecycle to start), else deletes it.
// KEYS: lock, wait zset, lock info, marker   ARGV: id, now
const RELEASE_OPERATION = `
redis.call('DEL', KEYS[4])
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local first = redis.call('ZRANGE', KEYS[2], 0, 0)
if first[1] then
  redis.call('ZREM', KEYS[2], first[1])
  redis.call('SET', KEYS[1], first[1])
  redis.call('HSET', KEYS[3], 'holder', first[1], 'since', ARGV[2])
  return first[1]
end
redis.call('DEL', KEYS[1], KEYS[3])
return false
`;

export class ReleaseStore implements ReleaseRepository, OperationLocks {
  readonly redis: Redis;
  readonly prefix: string;

  constructor(redis: Redis, prefix = 'ferry') {
    this.redis = redis;
    this.prefix = prefix;
  }

  private k(...parts: string[]): string {
    return [this.prefix, ...parts].join(':');
  }

  lockKey(app: string, env: string): string {
    return this.k('lock', app, env);
  }

  private lockInfoKey(app: string, env: string): string {
    return this.k('lock-info', app, env);
  }

  private waitKey(app: string, env: string): string {
    return this.k('waiting', app, env);
  }

  async nextId(): Promise<string> {
    return `r${await this.redis.incr(this.k('seq'))}`;
  }

  async create(release: Release, actor: string): Promise<AuditEntry> {
    const audit: AuditEntry = {
      releaseId: release.id,
      at: release.requestedAt,
      actor,
      from: null,
      to: release.state,
      event: 'request',
      detail: `${release.app} ${release.version} → ${release.environment}${release.factors.length ? ` [${release.factors.join(', ')}]` : ''}`,
    };
    const stored = { ...release, rev: 1 };
    const created = await this.redis.eval(
      CREATE,
      5,
      this.k('release', release.id),
      this.k('audit', release.id),
      this.k('audit'),
      this.k('active'),
      this.k('by-app', release.app),
      JSON.stringify(stored),
      release.state,
      JSON.stringify(audit),
      release.id,
      String(release.requestedAt),
    );
    if (created !== 1) throw new Error(`release ${release.id} exists already`);
    return audit;
  }

  async get(id: string): Promise<Release | undefined> {
    const data = await this.redis.hget(this.k('release', id), 'data');
    return data ? (JSON.parse(data) as Release) : undefined;
  }

  async many(ids: string[]): Promise<Release[]> {
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hget(this.k('release', id), 'data');
    const rows = (await pipe.exec()) ?? [];
    return rows.flatMap(([, v]) => (typeof v === 'string' ? [JSON.parse(v) as Release] : []));
  }

  /** Releases not yet in a final state, oldest first. */
  async active(): Promise<Release[]> {
    const ids = await this.redis.smembers(this.k('active'));
    return (await this.many(ids)).sort((a, b) => a.requestedAt - b.requestedAt || a.id.localeCompare(b.id));
  }

  async byApp(app: string, limit = 50): Promise<Release[]> {
    const ids = await this.redis.zrevrange(this.k('by-app', app), 0, limit - 1);
    return this.many(ids);
  }

  async audit(id: string): Promise<AuditEntry[]> {
    const rows = await this.redis.lrange(this.k('audit', id), 0, -1);
    return rows.map((r) => JSON.parse(r) as AuditEntry);
  }

  /** The global audit trail, newest last. */
  async auditAll(count = 1000): Promise<AuditEntry[]> {
    const rows = await this.redis.xrevrange(this.k('audit'), '+', '-', 'COUNT', count);
    return rows.map(([, fields]) => JSON.parse(fields[1] as string) as AuditEntry).reverse();
  }

  /**
   * Applies an event with optimistic concurrency: read, decide in the domain,
   * commit if nobody else committed in between, else try again.
   */
  async apply(
    id: string,
    event: ReleaseEvent,
    actor?: string,
    now = Date.now(),
    guard?: CommitGuard,
  ): Promise<CommitResult> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const current = await this.get(id);
      if (!current) return { ok: false, reason: `There is no release ${id}.` };
      // Permission is decided on the release as it is now, on every attempt:
      // a conflicting commit may have changed what this event is allowed to do.
      const allowed = guard?.(current);
      if (allowed && !allowed.ok) return allowed;
      const t = transition(current, event, now, actor);
      if (!t.ok) return t;
      const result = await this.commit(current, t.release, t.audit, now, event);
      if (result === 'duplicate') return { ok: false, reason: `${id}: you already approved it.` };
      if (result) return result;
    }
    return { ok: false, reason: `${id} is changing too fast to update; try again.` };
  }

  /** Stores a change that is not a lifecycle event (thread ts, promotion flag), still atomically. */
  async patch(id: string, change: (r: Release) => Release): Promise<Release | undefined> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const current = await this.get(id);
      if (!current) return undefined;
      const next = { ...change(current), rev: current.rev + 1 };
      const ok = await this.redis.eval(
        `if redis.call('HGET', KEYS[1], 'rev') ~= ARGV[1] then return 0 end
         redis.call('HSET', KEYS[1], 'data', ARGV[2], 'rev', ARGV[3]) return 1`,
        1,
        this.k('release', id),
        String(current.rev),
        JSON.stringify(next),
        String(next.rev),
      );
      if (ok === 1) return next;
    }
    throw new Error(`could not update ${id}`);
  }

  private async commit(
    current: Release,
    next: Release,
    audit: AuditEntry,
    now: number,
    event: ReleaseEvent,
  ): Promise<CommitResult | 'duplicate' | undefined> {
    const stored: Release = { ...next, rev: current.rev + 1 };
    const terminal = hasEnded(stored);
    const res = (await this.redis.eval(
      COMMIT,
      8,
      this.k('release', current.id),
      this.k('audit', current.id),
      this.k('audit'),
      this.k('active'),
      this.lockKey(current.app, current.environment),
      this.waitKey(current.app, current.environment),
      this.lockInfoKey(current.app, current.environment),
      this.k('approvers', current.id),
      String(current.rev),
      JSON.stringify(stored),
      String(stored.rev),
      stored.state,
      JSON.stringify(audit),
      terminal ? '1' : '0',
      current.id,
      !terminal && holdsLock(stored.state) ? '1' : '0',
      String(now),
      event.type === 'approve' ? event.by : '',
    )) as [string, string];
    if (res[0] === 'conflict') return undefined;
    if (res[0] === 'duplicate') return 'duplicate';
    metrics.transitions.inc({ to: stored.state });
    return { ok: true, release: stored, audit, ...(res[1] ? { handedTo: res[1] } : {}) };
  }

  /** Priority first (1 is most urgent), then arrival. */
  async acquire(release: Release, now = Date.now()): Promise<LockResult> {
    const seq = Number(release.id.slice(1));
    const score = release.plan.priority.value * 1e12 + seq;
    const res = (await this.redis.eval(
      ACQUIRE,
      3,
      this.lockKey(release.app, release.environment),
      this.waitKey(release.app, release.environment),
      this.lockInfoKey(release.app, release.environment),
      release.id,
      String(score),
      this.k('release', ''),
      TERMINAL_LIST,
      String(now),
    )) as [string, number, string];
    return res[0] === 'acquired'
      ? { acquired: true }
      : { acquired: false, position: Number(res[1]), holder: res[2] };
  }

  async lockHolder(app: string, env: string): Promise<string | null> {
    return this.redis.get(this.lockKey(app, env));
  }

  /** Who holds the lock and since when; `since` is unknown for a lock written before it was recorded. */
  async lockInfo(app: string, env: string): Promise<LockInfo | null> {
    const [holder, info] = await Promise.all([
      this.redis.get(this.lockKey(app, env)),
      this.redis.hgetall(this.lockInfoKey(app, env)),
    ]);
    if (!holder) return null;
    return info.holder === holder && info.since ? { holder, since: Number(info.since) } : { holder };
  }

  async waiting(app: string, env: string): Promise<string[]> {
    return this.redis.zrange(this.waitKey(app, env), '0', '-1');
  }

  async acquireOperation(
    app: string,
    env: string,
    id: string,
    ttlSeconds: number,
    now = Date.now(),
  ): Promise<{ acquired: true } | { acquired: false; holder: string }> {
    const holder = (await this.redis.eval(
      ACQUIRE_OPERATION,
      4,
      this.lockKey(app, env),
      this.waitKey(app, env),
      this.lockInfoKey(app, env),
      this.k('release', id),
      id,
      this.k('release', ''),
      TERMINAL_LIST,
      String(now),
      String(Math.max(1, Math.ceil(ttlSeconds))),
    )) as string | null;
    return holder ? { acquired: false, holder } : { acquired: true };
  }

  async releaseOperation(
    app: string,
    env: string,
    id: string,
    now = Date.now(),
  ): Promise<string | undefined> {
    const next = (await this.redis.eval(
      RELEASE_OPERATION,
      4,
      this.lockKey(app, env),
      this.waitKey(app, env),
      this.lockInfoKey(app, env),
      this.k('release', id),
      id,
      String(now),
    )) as string | null;
    return next ?? undefined;
  }

  /** An operation's audit entry: under its own id and in the global trail, like a release's. */
  async recordOperation(entry: AuditEntry): Promise<void> {
    const json = JSON.stringify(entry);
    await this.redis
      .multi()
      .rpush(this.k('audit', entry.releaseId), json)
      .xadd(this.k('audit'), '*', 'entry', json)
      .exec();
  }

  /** Remembers a delivery or click for `ttlSeconds`; false when it was seen before. */
  async once(key: string, ttlSeconds = 600): Promise<boolean> {
    return (await this.redis.set(this.k('once', key), '1', 'EX', String(ttlSeconds), 'NX')) === 'OK';
  }
}
