// A list-then-watch loop that survives what client-node's watches do in
// practice: they go silent without an error (client-node #364, #596, #958),
// end when the server closes them, or fail. The loop re-lists on a timer
// (default every 5 minutes) and after an error (with backoff), and re-watches
// from the last resourceVersion when a quiet watch merely timed out. After a
// re-list every object is delivered again: handlers must be idempotent.
import { type KubeConfig, Watch } from '@kubernetes/client-node';
import type { Logger } from '../logging.ts';

export interface ListWatchOptions<T> {
  name: string;
  kc: KubeConfig;
  /** Watch path, e.g. /api/v1/namespaces/ns/pods. */
  path: string;
  query?: Record<string, string>;
  list: () => Promise<{ items: T[]; resourceVersion?: string }>;
  onObject: (type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'LISTED', obj: T) => void | Promise<void>;
  /** Re-list this often even when all looks well (default 5 min). */
  relistMs?: number;
  log: Logger;
  maxBackoffMs?: number;
}

export class ListWatch<T> {
  private readonly o: ListWatchOptions<T>;
  private controller: AbortController | undefined;
  private stopped = false;
  private relistTimer: NodeJS.Timeout | undefined;
  private resourceVersion: string | undefined;
  private failures = 0;
  private generation = 0;
  /** Counters for tests and metrics. */
  readonly stats = { lists: 0, watches: 0, errors: 0, events: 0 };
  private readyResolve: (() => void) | undefined;
  /** Resolves after the first successful list. */
  readonly ready: Promise<void>;

  /** What it watches, e.g. `eu-west/pods/payments`. */
  get name(): string {
    return this.o.name;
  }

  constructor(o: ListWatchOptions<T>) {
    this.o = o;
    this.ready = new Promise((r) => {
      this.readyResolve = r;
    });
  }

  start(): this {
    void this.relist();
    return this;
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    clearTimeout(this.relistTimer);
    this.controller?.abort();
  }

  /** Forces a re-list now (what the timer does). */
  restart(): void {
    if (this.stopped) return;
    void this.relist();
  }

  private async relist(): Promise<void> {
    const gen = ++this.generation;
    this.controller?.abort();
    clearTimeout(this.relistTimer);
    try {
      const { items, resourceVersion } = await this.o.list();
      if (gen !== this.generation || this.stopped) return;
      this.stats.lists++;
      this.resourceVersion = resourceVersion;
      for (const item of items) await this.deliver('LISTED', item);
      this.failures = 0;
      this.readyResolve?.();
      this.relistTimer = setTimeout(() => this.restart(), this.o.relistMs ?? 300_000);
      this.relistTimer.unref?.();
      await this.watch(gen);
    } catch (err) {
      this.retry(gen, err);
    }
  }

  private retry(gen: number, err: unknown): void {
    if (gen !== this.generation || this.stopped) return;
    this.stats.errors++;
    this.failures++;
    const delay = Math.min(this.o.maxBackoffMs ?? 30_000, 500 * 2 ** Math.min(this.failures - 1, 8));
    this.o.log.warn(
      { watch: this.o.name, err: (err as Error)?.message ?? String(err), delay },
      'watch failed; re-listing',
    );
    clearTimeout(this.relistTimer);
    const next = ++this.generation;
    this.controller?.abort();
    this.relistTimer = setTimeout(() => {
      if (next === this.generation && !this.stopped) void this.relist();
    }, delay);
    this.relistTimer.unref?.();
  }

  private async deliver(type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'LISTED', obj: T): Promise<void> {
    try {
      await this.o.onObject(type, obj);
    } catch (err) {
      this.o.log.warn({ watch: this.o.name, err: (err as Error).message }, 'watch handler failed');
    }
  }

  private async watch(gen: number): Promise<void> {
    if (gen !== this.generation || this.stopped) return;
    this.stats.watches++;
    const w = new Watch(this.o.kc);
    this.controller = await w.watch(
      this.o.path,
      {
        ...(this.o.query ?? {}),
        allowWatchBookmarks: true,
        ...(this.resourceVersion ? { resourceVersion: this.resourceVersion } : {}),
      },
      (type, obj) => {
        if (gen !== this.generation) return;
        const rv = (obj as { metadata?: { resourceVersion?: string } })?.metadata?.resourceVersion;
        if (type === 'BOOKMARK') {
          if (rv) this.resourceVersion = rv;
          return;
        }
        if (type === 'ERROR') {
          // 410 Gone: our resourceVersion is too old; re-list
          this.resourceVersion = undefined;
          this.retry(gen, new Error(`watch error: ${(obj as { message?: string })?.message ?? 'unknown'}`));
          return;
        }
        this.stats.events++;
        if (rv) this.resourceVersion = rv;
        void this.deliver(type as 'ADDED' | 'MODIFIED' | 'DELETED', obj as T);
      },
      (err: unknown) => {
        if (gen !== this.generation || this.stopped) return;
        const name = (err as { name?: string })?.name;
        if (!err || name === 'TimeoutError') {
          // the server closed it or it was quiet for a while: watch again from where we were
          void this.watch(gen).catch((e) => this.retry(gen, e));
        } else {
          this.retry(gen, err);
        }
      },
    );
  }
}
