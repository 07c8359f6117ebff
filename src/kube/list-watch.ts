// Ferry's one list-and-watch: client-node's informer (its `ListWatch`, what `makeInformer` builds)
// with what it lacks for a long-running process around it.
//
// What the informer does (client-node 2.x, dist/cache.js): lists, then watches from the list's
// resourceVersion; re-watches from the last resourceVersion when a watch ends cleanly or times out
// (the Watch aborts after 30 s without a byte); forgets the resourceVersion and lists again when a
// watch ends after a 410 Gone. What it does not do, and this wrapper adds:
// - after an error (a failed list, a refused or broken watch) it calls its 'error' handlers and
//   stops for good: the wrapper starts it again with a capped backoff;
// - a watch can go silent while its connection stays up (client-node #364, #596, #958): the
//   wrapper re-lists on a timer (default every 5 minutes) whatever the watch looks like;
// - a watch answered with an ERROR status stays open until the server closes it: the wrapper ends
//   it at once so the informer moves on (a re-list on 410);
// - the objects by uid (the informer keys them by namespace/name, so a pod recreated under the same
//   name would hide the old one), every object delivered again after each list (handlers are
//   idempotent; a handler that failed gets another go), deliveries in order, and counters.
import {
  ListWatch as Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  Watch,
} from '@kubernetes/client-node';
import type { Logger } from '../logging.ts';

export type ObjectChange = 'LISTED' | 'ADDED' | 'MODIFIED' | 'DELETED';

export interface ListWatchOptions<T extends KubernetesObject> {
  /** What it watches, for logs, e.g. `eu-west/pods/payments`. */
  name: string;
  kc: KubeConfig;
  /** Watch path, e.g. /api/v1/namespaces/ns/pods. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** The list behind the watch; its resourceVersion is where the watch starts. */
  list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>;
  /** Called in order, one at a time, for every listed object and every watch event. */
  onObject?: (type: ObjectChange, obj: T) => void | Promise<void>;
  /** Kept instead of each watched object (e.g. a projection of a pod, so a large cluster's pods stay small). */
  keep?: (obj: T) => T;
  /** Re-list this often even when all looks well (default 5 min). */
  relistMs?: number;
  /** Longest wait before starting again after an error (default 30 s). */
  maxBackoffMs?: number;
  log?: Logger;
}

/** How the informer is told to list again: a watch that ended with 410 Gone makes it re-list. */
const relistNow = (): Error => Object.assign(new Error('re-list'), { statusCode: 410 });

/** One watch connection the informer asked for. */
interface OpenWatch {
  controller?: AbortController;
  /** It has ended (or been superseded): nothing more from it counts. */
  over: boolean;
  finish: (err: unknown) => void;
}

export class ListWatch<T extends KubernetesObject> {
  /** The objects as last listed and watched, by uid. */
  readonly items = new Map<string, T>();
  /** Counters for tests and metrics: lists (the first and every re-list), watch connections, errors, events, 410s. */
  readonly stats = { lists: 0, watches: 0, errors: 0, events: 0, expired: 0 };
  /** Resolves once the first list has been delivered. */
  readonly ready: Promise<void>;
  private resolveReady: () => void = () => {};
  private readonly o: ListWatchOptions<T>;
  private readonly informer: Informer<T>;
  private stopped = true;
  /** The informer is not running: not started yet, or it stopped after an error until the backoff ends. */
  private idle = true;
  private listing = false;
  /** A re-list was asked for; the informer gets it at its next watch. */
  private relistWanted = false;
  private current: OpenWatch | undefined;
  private failures = 0;
  private backoffTimer: NodeJS.Timeout | undefined;
  private relistTimer: NodeJS.Timeout | undefined;
  private deliveries: Promise<void> = Promise.resolve();

  constructor(o: ListWatchOptions<T>) {
    this.o = o;
    this.ready = new Promise((resolve) => {
      this.resolveReady = resolve;
    });
    const self = this;
    // The informer opens its watches through this, so each one can be counted, ended and superseded.
    const watch = new (class extends Watch {
      override watch(
        path: string,
        query: Record<string, string | number | boolean | undefined>,
        callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
        done: (err: unknown) => void,
      ): Promise<AbortController> {
        return self.openWatch(query, callback, done, (q, cb, d) => super.watch(path, q, cb, d));
      }
    })(o.kc);
    this.informer = new Informer<T>(
      o.path,
      watch,
      () => this.list(),
      false,
      o.labelSelector,
      o.fieldSelector,
    );
    this.informer.on('error', (err) => this.failed(err));
  }

  get name(): string {
    return this.o.name;
  }

  start(): this {
    if (!this.stopped) return this;
    this.stopped = false;
    this.resume();
    return this;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.backoffTimer);
    clearTimeout(this.relistTimer);
    const open = this.current;
    this.current = undefined;
    if (open) {
      open.over = true;
      open.controller?.abort();
    }
    void this.informer.stop();
  }

  /** Re-lists now (what the timer does). */
  restart(): void {
    if (this.stopped) return;
    this.relistWanted = true;
    if (this.listing) return; // the list under way is the re-list
    const open = this.current;
    if (open) open.finish(relistNow());
    else if (this.idle) {
      clearTimeout(this.backoffTimer);
      this.resume();
    }
    // else the informer is between watches (its reconnect delay): openWatch passes it on
  }

  private resume(): void {
    if (this.stopped) return;
    this.idle = false;
    this.informer.start().catch((err: unknown) => this.failed(err));
  }

  private failed(err: unknown): void {
    if (this.stopped) return;
    this.idle = true;
    this.stats.errors++;
    this.failures++;
    const delay = Math.min(this.o.maxBackoffMs ?? 30_000, 500 * 2 ** Math.min(this.failures - 1, 8));
    this.o.log?.warn(
      { watch: this.o.name, err: (err as Error)?.message ?? String(err), delay },
      'list-watch failed; starting again',
    );
    clearTimeout(this.backoffTimer);
    this.backoffTimer = setTimeout(() => this.resume(), delay);
    this.backoffTimer.unref?.();
  }

  private async list(): Promise<KubernetesListObject<T>> {
    this.listing = true;
    this.relistWanted = false;
    try {
      const list = await this.o.list();
      const items = list.items.map((obj) => this.kept(obj));
      if (this.stopped) return { ...list, items };
      this.stats.lists++;
      this.failures = 0;
      const listed = new Set<string>();
      for (const obj of items) {
        const key = keyOf(obj);
        listed.add(key);
        this.items.set(key, obj);
        this.deliver('LISTED', obj);
      }
      // gone while nobody watched
      for (const [key, obj] of this.items) {
        if (listed.has(key)) continue;
        this.items.delete(key);
        this.deliver('DELETED', obj);
      }
      void this.deliveries.then(this.resolveReady);
      clearTimeout(this.relistTimer);
      this.relistTimer = setTimeout(() => this.restart(), this.o.relistMs ?? 300_000);
      this.relistTimer.unref?.();
      return { ...list, items };
    } finally {
      this.listing = false;
    }
  }

  private async openWatch(
    query: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
    connect: (
      query: Record<string, string | number | boolean | undefined>,
      callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
      done: (err: unknown) => void,
    ) => Promise<AbortController>,
  ): Promise<AbortController> {
    const unused = new AbortController();
    unused.abort();
    if (this.stopped) return unused;
    if (this.relistWanted) {
      // after the informer has taken this (dead) watch as its request, tell it the watch is gone
      setImmediate(() => {
        if (!this.stopped) done(relistNow());
      });
      return unused;
    }
    const open: OpenWatch = {
      over: false,
      // Ends it once: closes the connection (the informer may by then point at a newer one) and
      // tells the informer how it ended.
      finish: (err) => {
        if (open.over) return;
        open.over = true;
        if (this.current === open) this.current = undefined;
        open.controller?.abort();
        done(err);
      },
    };
    this.current = open;
    this.stats.watches++;
    try {
      open.controller = await connect(
        // bookmarks keep the resourceVersion recent, so a re-watch less often meets a 410
        { ...query, allowWatchBookmarks: true },
        (phase, obj, raw) => {
          if (open.over) return;
          if (phase === 'ERROR') {
            if ((obj as { code?: number })?.code === 410) this.stats.expired++;
            callback(phase, obj, raw); // on 410 the informer forgets its resourceVersion
            // the server ends a watch after an error status; end it now so the informer moves on
            open.finish(null);
            return;
          }
          if (phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED') {
            const kept = this.kept(obj as T);
            this.stats.events++;
            this.failures = 0;
            const key = keyOf(kept);
            if (phase === 'DELETED') this.items.delete(key);
            else this.items.set(key, kept);
            this.deliver(phase, kept);
            callback(phase, kept, raw);
            return;
          }
          callback(phase, obj, raw);
        },
        (err) => {
          // a watch refused outright with HTTP 410 (not as an ERROR event in the stream) is a 410 too
          if (!open.over && (err as { statusCode?: number } | null)?.statusCode === 410) this.stats.expired++;
          open.finish(err);
        },
      );
    } catch (err) {
      // e.g. the credentials could not be had: an error like a refused watch
      setImmediate(() => open.finish(err));
      return unused;
    }
    // ended (superseded, or the wrapper stopped) while it was connecting
    if (open.over) open.controller.abort();
    return open.controller;
  }

  /** What is kept of `obj`: the projection, still with the resourceVersion the informer resumes from. */
  private kept(obj: T): T {
    if (!this.o.keep) return obj;
    const kept = this.o.keep(obj);
    const resourceVersion = obj.metadata?.resourceVersion;
    if (!resourceVersion || kept.metadata?.resourceVersion === resourceVersion) return kept;
    return { ...kept, metadata: { ...kept.metadata, resourceVersion } };
  }

  private deliver(type: ObjectChange, obj: T): void {
    const onObject = this.o.onObject;
    if (!onObject) return;
    this.deliveries = this.deliveries.then(async () => {
      try {
        await onObject(type, obj);
      } catch (err) {
        this.o.log?.warn({ watch: this.o.name, err: (err as Error)?.message }, 'watch handler failed');
      }
    });
  }
}

function keyOf(obj: KubernetesObject): string {
  const m = obj.metadata;
  return m?.uid ?? `${m?.namespace ?? ''}/${m?.name ?? ''}`;
}
