// The domain's ports held in memory, for unit tests of the release logic
// (Lifecycle, policy, the state machine) with no process and no network.
// They keep the contracts the Redis store keeps (src/store/releases.ts and
// its Lua scripts): a transition is the domain's `transition` committed at
// the release's revision, an approver counts once, a release that ends hands
// its app and environment's lock to the next in line (priority, then
// arrival). They are test doubles of Ferry's own ports, not of Redis: the
// store itself is tested against a real Redis in test/integration.
import type {
  Announcer,
  CommitGuard,
  CommitResult,
  LockInfo,
  LockResult,
  Outbound,
  ReleaseRepository,
  VersionLookup,
  WorkScheduler,
} from '../../src/domain/ports.ts';
import {
  type AuditEntry,
  hasEnded,
  holdsLock,
  type Release,
  type ReleaseEvent,
  transition,
} from '../../src/domain/release.ts';

export class MemoryReleases implements ReleaseRepository {
  readonly releases = new Map<string, Release>();
  readonly audits = new Map<string, AuditEntry[]>();
  private readonly locks = new Map<string, LockInfo>();
  private readonly lines = new Map<string, { id: string; score: number }[]>();
  private readonly approvers = new Map<string, Set<string>>();
  private readonly seen = new Set<string>();
  private seq = 0;

  private lane(app: string, env: string): string {
    return `${app}/${env}`;
  }

  async nextId(): Promise<string> {
    return `r${++this.seq}`;
  }

  async create(release: Release, actor: string): Promise<AuditEntry> {
    const entry: AuditEntry = {
      releaseId: release.id,
      at: release.requestedAt,
      actor,
      from: null,
      to: release.state,
      event: 'request',
    };
    this.releases.set(release.id, structuredClone(release));
    this.audits.set(release.id, [entry]);
    return entry;
  }

  async get(id: string): Promise<Release | undefined> {
    const r = this.releases.get(id);
    return r && structuredClone(r);
  }

  async active(): Promise<Release[]> {
    return [...this.releases.values()].filter((r) => !hasEnded(r)).map((r) => structuredClone(r));
  }

  async byApp(app: string, limit = 20): Promise<Release[]> {
    return [...this.releases.values()]
      .filter((r) => r.app === app)
      .reverse()
      .slice(0, limit)
      .map((r) => structuredClone(r));
  }

  async audit(id: string): Promise<AuditEntry[]> {
    return [...(this.audits.get(id) ?? [])];
  }

  async apply(
    id: string,
    event: ReleaseEvent,
    actor?: string,
    now = Date.now(),
    guard?: CommitGuard,
  ): Promise<CommitResult> {
    const current = this.releases.get(id);
    if (!current) return { ok: false, reason: `There is no release ${id}.` };
    const allowed = guard?.(current);
    if (allowed && !allowed.ok) return allowed;
    const t = transition(current, event, now, actor);
    if (!t.ok) return t;
    if (event.type === 'approve') {
      const set = this.approvers.get(id) ?? new Set();
      if (set.has(event.by)) return { ok: false, reason: `${id}: you already approved it.` };
      set.add(event.by);
      this.approvers.set(id, set);
    }
    const stored: Release = { ...t.release, rev: current.rev + 1 };
    this.releases.set(id, structuredClone(stored));
    this.audits.get(id)?.push(t.audit);
    const lane = this.lane(stored.app, stored.environment);
    let handedTo: string | undefined;
    if (hasEnded(stored)) {
      this.lines.set(
        lane,
        (this.lines.get(lane) ?? []).filter((w) => w.id !== id),
      );
      if (this.locks.get(lane)?.holder === id) {
        this.locks.delete(lane);
        const next = this.lines.get(lane)?.shift();
        if (next) {
          this.locks.set(lane, { holder: next.id, since: now });
          handedTo = next.id;
        }
      }
    } else if (holdsLock(stored.state) && !this.locks.has(lane)) {
      this.locks.set(lane, { holder: id, since: now });
    }
    return { ok: true, release: structuredClone(stored), audit: t.audit, ...(handedTo ? { handedTo } : {}) };
  }

  async patch(id: string, change: (r: Release) => Release): Promise<Release | undefined> {
    const current = this.releases.get(id);
    if (!current) return undefined;
    const next = { ...change(structuredClone(current)), rev: current.rev + 1 };
    this.releases.set(id, next);
    return structuredClone(next);
  }

  async acquire(release: Release, now = Date.now()): Promise<LockResult> {
    const lane = this.lane(release.app, release.environment);
    const holder = this.locks.get(lane)?.holder;
    const held = holder !== undefined && holder !== release.id;
    const holderRelease = holder ? this.releases.get(holder) : undefined;
    if (!held || (holderRelease && hasEnded(holderRelease))) {
      this.locks.set(lane, { holder: release.id, since: now });
      return { acquired: true };
    }
    const line = (this.lines.get(lane) ?? []).filter((w) => w.id !== release.id);
    line.push({ id: release.id, score: release.plan.priority.value * 1e12 + Number(release.id.slice(1)) });
    line.sort((a, b) => a.score - b.score);
    this.lines.set(lane, line);
    return {
      acquired: false,
      position: line.findIndex((w) => w.id === release.id) + 1,
      holder: holder as string,
    };
  }

  async lockHolder(app: string, env: string): Promise<string | null> {
    return this.locks.get(this.lane(app, env))?.holder ?? null;
  }

  async lockInfo(app: string, env: string): Promise<LockInfo | null> {
    return this.locks.get(this.lane(app, env)) ?? null;
  }

  async lockInfos(pairs: readonly (readonly [string, string])[]): Promise<(LockInfo | null)[]> {
    return pairs.map(([app, env]) => this.locks.get(this.lane(app, env)) ?? null);
  }

  async waiting(app: string, env: string): Promise<string[]> {
    return (this.lines.get(this.lane(app, env)) ?? []).map((w) => w.id);
  }

  async once(key: string): Promise<boolean> {
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    return true;
  }

  private readonly held = new Map<string, Promise<unknown>>();

  /** One process: the mutex is a promise chain per key. */
  async exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.held.get(key) ?? Promise.resolve();
    const run = before.catch(() => {}).then(fn);
    this.held.set(key, run);
    return run;
  }
}

/** Versions that passed environments, as the version store records them. */
export class MemoryVersions implements VersionLookup {
  private readonly records = new Map<
    string,
    { passed: Record<string, number>; images: Record<string, { digest: string; image: string }> }
  >();

  passed(app: string, version: string, environment: string, at = Date.now()): void {
    const key = `${app}@${version}`;
    const rec = this.records.get(key) ?? { passed: {}, images: {} };
    rec.passed[environment] = at;
    this.records.set(key, rec);
  }

  async get(app: string, version: string) {
    return this.records.get(`${app}@${version}`);
  }
}

/** What Lifecycle asked the workers to do, in order. */
export class RecordingScheduler implements WorkScheduler {
  readonly calls: {
    call: 'startFlow' | 'scheduleExpiry' | 'startRollback' | 'schedulePrepare';
    id: string;
    detail?: string;
  }[] = [];

  async schedulePrepare(release: Release): Promise<void> {
    this.calls.push({ call: 'schedulePrepare', id: release.id });
  }

  async startFlow(release: Release): Promise<void> {
    this.calls.push({ call: 'startFlow', id: release.id });
  }

  async scheduleExpiry(release: Release, at: number): Promise<void> {
    this.calls.push({ call: 'scheduleExpiry', id: release.id, detail: String(at) });
  }

  async startRollback(release: Release, reason: string): Promise<void> {
    this.calls.push({ call: 'startRollback', id: release.id, detail: reason });
  }
}

/** Every message the domain announced, in order. */
export class RecordingAnnouncer implements Announcer {
  readonly sent: Outbound[] = [];

  async announce(message: Outbound): Promise<void> {
    this.sent.push(message);
  }

  /** The thread replies of one release. */
  replies(releaseId: string): string[] {
    return this.sent.flatMap((m) => (m.kind === 'reply' && m.releaseId === releaseId ? [m.text] : []));
  }
}
