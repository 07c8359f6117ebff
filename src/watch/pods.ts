// Pods by UID, for the sources that only know a pod by its UID (the node
// agent reads it from the cgroup path; kernel messages carry it). The pod
// watcher feeds it; a miss asks the API (at most once a second).
//
// The index keeps a projection of each pod (slimPod): the fields the OOM
// sources and the alert read, not the whole object. At 18,000 pods a full
// V1Pod (spec, every env var and volume, managedFields) is what made the
// watcher's memory grow with the cluster.
import type { V1Container, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';

/** What OOM detection reads of a container's status. */
function slimStatus(s: V1ContainerStatus): V1ContainerStatus {
  return {
    name: s.name,
    restartCount: s.restartCount,
    ready: s.ready,
    image: '',
    imageID: '',
    ...(s.containerID ? { containerID: s.containerID } : {}),
    ...(s.state?.terminated ? { state: { terminated: s.state.terminated } } : {}),
    ...(s.lastState?.terminated ? { lastState: { terminated: s.lastState.terminated } } : {}),
  };
}

/** What OOM detection reads of a container's spec: its name, memory request/limit, FERRY_ENV. */
function slimContainer(c: V1Container): V1Container {
  const env = c.env?.filter((e) => e.name === 'FERRY_ENV' && e.value !== undefined);
  const memLimit = c.resources?.limits?.['memory'];
  const memRequest = c.resources?.requests?.['memory'];
  return {
    name: c.name,
    ...(env?.length ? { env } : {}),
    ...(memLimit || memRequest
      ? {
          resources: {
            ...(memLimit ? { limits: { memory: memLimit } } : {}),
            ...(memRequest ? { requests: { memory: memRequest } } : {}),
          },
        }
      : {}),
  };
}

/**
 * The part of a pod the watcher needs (identity, labels, owner, node, containers'
 * names/memory/FERRY_ENV, container statuses' ids, restarts and terminations).
 * oomFromPod, oomFromEvent and the node agent give the same answers for it as
 * for the full pod.
 */
export function slimPod(pod: V1Pod): V1Pod {
  const m = pod.metadata ?? {};
  const owners = m.ownerReferences?.map((o) => ({
    apiVersion: o.apiVersion,
    kind: o.kind,
    name: o.name,
    uid: o.uid,
    ...(o.controller !== undefined ? { controller: o.controller } : {}),
  }));
  const statuses = pod.status?.containerStatuses?.map(slimStatus);
  const initStatuses = pod.status?.initContainerStatuses?.map(slimStatus);
  return {
    metadata: {
      ...(m.name ? { name: m.name } : {}),
      ...(m.namespace ? { namespace: m.namespace } : {}),
      ...(m.uid ? { uid: m.uid } : {}),
      ...(m.labels ? { labels: m.labels } : {}),
      ...(owners?.length ? { ownerReferences: owners } : {}),
    },
    spec: {
      containers: (pod.spec?.containers ?? []).map(slimContainer),
      ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
    },
    status: {
      ...(pod.status?.phase ? { phase: pod.status.phase } : {}),
      ...(statuses ? { containerStatuses: statuses } : {}),
      ...(initStatuses ? { initContainerStatuses: initStatuses } : {}),
    },
  };
}

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
    if (uid) this.byUidMap.set(uid, { pod: slimPod(pod) });
  }

  /** A deleted pod stays known for 10 minutes: a late signal about it still finds it. */
  gone(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    this.byUidMap.set(uid, { pod: slimPod(pod), goneAt: Date.now() });
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
