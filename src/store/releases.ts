// Releases, their audit trail and the one-release-per-app-and-environment
// lock, on Redis. Every transition is committed by one Lua script
// (scripts/commit-release.lua) — the new state, the audit entry, and the lock
// hand-over to the next release in line happen together or not at all — and
// only then announced.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
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
import { runScript, SCRIPTS } from './scripts.ts';

/** A mutex's lease: how long a holder that died keeps others waiting. */
const MUTEX_LEASE_MS = 30_000;
const MUTEX_POLL_MS = 250;

const TERMINAL_LIST = [...TERMINAL].join(',');

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
    const created = await runScript(
      this.redis,
      SCRIPTS.createRelease,
      [
        this.k('release', release.id),
        this.k('audit', release.id),
        this.k('audit'),
        this.k('active'),
        this.k('by-app', release.app),
      ],
      [JSON.stringify(stored), release.state, JSON.stringify(audit), release.id, String(release.requestedAt)],
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
      const ok = await runScript(
        this.redis,
        SCRIPTS.patchRelease,
        [this.k('release', id)],
        [String(current.rev), JSON.stringify(next), String(next.rev)],
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
    const res = (await runScript(
      this.redis,
      SCRIPTS.commitRelease,
      [
        this.k('release', current.id),
        this.k('audit', current.id),
        this.k('audit'),
        this.k('active'),
        this.lockKey(current.app, current.environment),
        this.waitKey(current.app, current.environment),
        this.lockInfoKey(current.app, current.environment),
        this.k('approvers', current.id),
      ],
      [
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
      ],
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
    const lock = this.lockKey(release.app, release.environment);
    // The script reads the holder's release, so that key must be passed: read the holder first, and
    // read again if the lock changed hands before the script ran.
    for (let attempt = 0; attempt < 20; attempt++) {
      const seen = (await this.redis.get(lock)) ?? '';
      const res = (await runScript(
        this.redis,
        SCRIPTS.acquireLock,
        [
          lock,
          this.waitKey(release.app, release.environment),
          this.lockInfoKey(release.app, release.environment),
          this.k('release', seen || release.id),
        ],
        [release.id, String(score), seen, TERMINAL_LIST, String(now)],
      )) as [string, number, string];
      if (res[0] === 'retry') continue;
      return res[0] === 'acquired'
        ? { acquired: true }
        : { acquired: false, position: Number(res[1]), holder: res[2] };
    }
    throw new Error(`the lock of ${release.app} ${release.environment} is changing too fast; try again`);
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

  async lockInfos(pairs: readonly (readonly [string, string])[]): Promise<(LockInfo | null)[]> {
    const out: (LockInfo | null)[] = [];
    // MGET in slices (9,000 apps × their environments is one status), then the record of each held lock.
    for (let i = 0; i < pairs.length; i += 1000) {
      const slice = pairs.slice(i, i + 1000);
      const holders = await this.redis.mget(slice.map(([a, e]) => this.lockKey(a, e)));
      const held = slice.flatMap((pair, j) =>
        holders[j] ? [{ pair, j, holder: holders[j] as string }] : [],
      );
      const infos = new Map<number, Record<string, string>>();
      if (held.length) {
        const pipe = this.redis.pipeline();
        for (const h of held) pipe.hgetall(this.lockInfoKey(h.pair[0], h.pair[1]));
        const rows = (await pipe.exec()) ?? [];
        held.forEach((h, k) => {
          infos.set(h.j, (rows[k]?.[1] as Record<string, string> | undefined) ?? {});
        });
      }
      for (const [j, holder] of holders.entries()) {
        const info = infos.get(j) ?? {};
        if (!holder) out.push(null);
        else
          out.push(info.holder === holder && info.since ? { holder, since: Number(info.since) } : { holder });
      }
    }
    return out;
  }

  async waiting(app: string, env: string): Promise<string[]> {
    return this.redis.zrange(this.waitKey(app, env), '0', '-1');
  }

  /**
   * Takes an app and environment's lock for an operation (a rollback or sync outside a release): only
   * when no live release holds it or waits for it (scripts/acquire-operation.lua).
   */
  async acquireOperation(
    app: string,
    env: string,
    id: string,
    ttlSeconds: number,
    now = Date.now(),
  ): Promise<{ acquired: true } | { acquired: false; holder: string }> {
    const lock = this.lockKey(app, env);
    const marker = this.k('release', id);
    // The script reads the holder's release, so that key must be passed: read the holder first, and
    // read again if the lock changed hands before the script ran.
    for (let attempt = 0; attempt < 20; attempt++) {
      const seen = (await this.redis.get(lock)) ?? '';
      const res = (await runScript(
        this.redis,
        SCRIPTS.acquireOperation,
        [
          lock,
          this.waitKey(app, env),
          this.lockInfoKey(app, env),
          marker,
          seen ? this.k('release', seen) : marker,
        ],
        [id, seen, TERMINAL_LIST, String(now), String(Math.max(1, Math.ceil(ttlSeconds)))],
      )) as [string, string?];
      if (res[0] === 'retry') continue;
      return res[0] === 'acquired' ? { acquired: true } : { acquired: false, holder: String(res[1]) };
    }
    throw new Error(`the lock of ${app} ${env} is changing too fast; try again`);
  }

  /** Frees an operation's lock; returns the release in line it was handed to, for the lifecycle to start. */
  async releaseOperation(
    app: string,
    env: string,
    id: string,
    now = Date.now(),
  ): Promise<string | undefined> {
    const next = (await runScript(
      this.redis,
      SCRIPTS.releaseOperation,
      [this.lockKey(app, env), this.waitKey(app, env), this.lockInfoKey(app, env), this.k('release', id)],
      [id, String(now)],
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

  async exclusive<T>(key: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const mutex = this.k('mutex', key);
    const token = randomUUID();
    const leaseMs = MUTEX_LEASE_MS;
    while ((await this.redis.set(mutex, token, 'PX', leaseMs, 'NX')) !== 'OK') {
      signal?.throwIfAborted();
      await sleep(MUTEX_POLL_MS);
    }
    // Renewed at a third of the lease: a holder alive but busy keeps it; a dead one loses it within a lease.
    const renew = setInterval(() => {
      runScript(this.redis, SCRIPTS.releaseMutex, [mutex], [token, 'extend', String(leaseMs)]).catch(
        () => {},
      );
    }, leaseMs / 3);
    try {
      return await fn();
    } finally {
      clearInterval(renew);
      await runScript(this.redis, SCRIPTS.releaseMutex, [mutex], [token, 'release']);
    }
  }
}
