// Pods by UID, for the sources that only know a pod by its UID (the node
// agent reads it from the cgroup path; kernel messages carry it). The pod
// watcher feeds it; a miss asks the API (at most once a second).
import type { V1Pod } from '@kubernetes/client-node';

export class PodIndex {
  private readonly byUidMap = new Map<string, { pod: V1Pod; goneAt?: number }>();
  private readonly lister: (() => Promise<V1Pod[]>) | undefined;
  private lastRefresh = 0;
  private refreshing: Promise<void> | undefined;

  /** `lister` lists the pods this index may be asked about (a node's, or the managed namespaces'). */
  constructor(lister?: () => Promise<V1Pod[]>) {
    this.lister = lister;
  }

  put(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (uid) this.byUidMap.set(uid, { pod });
  }

  /** A deleted pod stays known for 10 minutes: a late signal about it still finds it. */
  gone(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    this.byUidMap.set(uid, { pod, goneAt: Date.now() });
    const cutoff = Date.now() - 600_000;
    for (const [k, v] of this.byUidMap) if (v.goneAt && v.goneAt < cutoff) this.byUidMap.delete(k);
  }

  get size(): number {
    return this.byUidMap.size;
  }

  async byUid(uid: string, refresh = true): Promise<V1Pod | undefined> {
    const hit = this.byUidMap.get(uid)?.pod;
    if (hit || !refresh || !this.lister) return hit;
    await this.refresh();
    return this.byUidMap.get(uid)?.pod;
  }

  async refresh(minIntervalMs = 1000): Promise<void> {
    if (!this.lister) return;
    if (this.refreshing) return this.refreshing;
    if (Date.now() - this.lastRefresh < minIntervalMs) return;
    this.refreshing = (async () => {
      try {
        for (const p of await (this.lister as () => Promise<V1Pod[]>)()) this.put(p);
        this.lastRefresh = Date.now();
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }
}
