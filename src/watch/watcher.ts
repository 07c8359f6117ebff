// `ferry watch`: watches pods and events in the namespaces of the managed
// apps in every region, and turns OOM kills into alerts. Optionally runs the
// node agent (cgroup OOM counters) for nodes on this machine.
import type { CoreV1Event, KubernetesObject, V1Pod } from '@kubernetes/client-node';
import type { Redis } from 'ioredis';
import { PrometheusClient } from '../analysis/prometheus.ts';
import type { FerryConfig } from '../domain/config.ts';
import { durationMs } from '../domain/duration.ts';
import type { Announcer, ReleaseRepository } from '../domain/ports.ts';
import { managedNamespaces } from '../domain/workload.ts';
import { ListWatch } from '../kube/list-watch.ts';
import { type ClusterReader, clusterReader } from '../kube/logs.ts';
import type { Logger } from '../logging.ts';
import { Alerter, type AlerterDeps, type AlertOutcome } from './alerter.ts';
import { AlertDedupe } from './dedupe.ts';
import { NodeAgent } from './node-agent.ts';
import {
  isOomEvent,
  OOM_EVENT_REASONS,
  type OomFinding,
  oomFromEvent,
  oomFromPod,
  podRefFromKernelMessage,
} from './oom.ts';
import { PodIndex, slimPod } from './pods.ts';
import { Silences } from './silence.ts';

export interface NodeAgentTarget {
  region: string;
  node?: string;
  /** Memory cgroup directories holding the node's pods (e.g. /sys/fs/cgroup/memory/<cgroupRoot>/kubepods). */
  roots: string[];
}

export interface WatchOptions {
  config: () => FerryConfig;
  redis: Redis;
  prefix?: string;
  announcer: Announcer;
  releases: Pick<ReleaseRepository, 'active'>;
  log: Logger;
  cluster?: (context: string) => ClusterReader;
  /** Regions to watch (default: all in the config). */
  regions?: string[];
  /** Watch pods and events (default true); false for a node agent alone. */
  watchApi?: boolean;
  /** Node agents to run in this process. */
  nodeAgents?: NodeAgentTarget[];
  relistMs?: number;
  /** The node agents' poll interval for cgroups that cannot notify (default 100 ms). */
  pollMs?: number;
  /** Node agents use inotify on cgroup v2 memory.events (default true). */
  agentNotify?: boolean;
  /** Above this many namespaces in a region, one cluster-wide watch replaces per-namespace ones. */
  clusterWideAbove?: number;
  onAlert?: AlerterDeps['onAlert'];
  onOutcome?: (f: OomFinding, outcome: AlertOutcome) => void;
  /**
   * Subscribes to config changes (LiveConfig.onChange): the watches then follow the managed
   * namespaces and regions of each new config. Returns the unsubscribe.
   */
  configChanges?: (listener: (config: FerryConfig) => void) => () => void;
}

export interface WatchHandle {
  alerter: Alerter;
  silences: Silences;
  dedupe: AlertDedupe;
  watches: ListWatch<KubernetesObject>[];
  agents: NodeAgent[];
  pods: Map<string, PodIndex>;
  /** Resolves when every watch has listed once and every agent has taken its first reading. */
  ready: Promise<void>;
  /** Resolves when the watches have followed the config changes seen so far (and listed). */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

/** Namespaces of the managed apps: every environment's placement (src/domain/workload.ts). */
export { managedNamespaces };

export function startWatch(o: WatchOptions): WatchHandle {
  const config = o.config();
  const prefix = o.prefix ?? 'ferry';
  const dedupe = new AlertDedupe(o.redis, prefix);
  const silences = new Silences(o.redis, prefix);
  const cluster = o.cluster ?? clusterReader;
  const alerter = new Alerter({
    config: o.config,
    announcer: o.announcer,
    releases: o.releases,
    dedupe,
    silences,
    cluster,
    log: o.log,
    // The memory chart of an OOM alert reads Prometheus when the config names one (read per alert: a reload applies).
    metrics: () => {
      const m = o.config().metrics;
      return m ? new PrometheusClient(m.prometheus, durationMs(m.timeout)) : undefined;
    },
    ...(o.onAlert ? { onAlert: o.onAlert } : {}),
  });
  const report = async (f: OomFinding) => {
    const outcome = await alerter.handle(f);
    o.onOutcome?.(f, outcome);
    if (outcome !== 'duplicate' && outcome !== 'stale')
      o.log.debug({ outcome, occurrence: f.occurrence, source: f.source }, 'OOM finding');
    return outcome;
  };
  /** The running watches by what they watch: `region\0context\0pods|events|node\0namespace|*`. */
  const running = new Map<string, ListWatch<KubernetesObject>>();
  const agents: NodeAgent[] = [];
  const pods = new Map<string, PodIndex>();
  /** What is watched now; replaced when the config changes (managed namespaces, regions). */
  let namespaces: string[] = [];
  let nsSet = new Set<string>();
  const regionState = new Map<string, { context: string; reader: ClusterReader; index: PodIndex }>();

  const regionOf = (region: string, rc: { context: string }) => {
    const had = regionState.get(region);
    if (had && had.context === rc.context) return had;
    const reader = cluster(rc.context);
    const index = new PodIndex(async () => {
      // Past a few dozen namespaces one paged cluster-wide list is cheaper than a list per namespace
      // (a miss of the node agent used to cost one request per managed namespace).
      if (namespaces.length > (o.clusterWideAbove ?? 50))
        return (await pagedPods(reader, {})).items.filter((p) => nsSet.has(p.metadata?.namespace ?? ''));
      const lists = await Promise.all(namespaces.map((namespace) => reader.pods(namespace)));
      return lists.flat();
    });
    const state = { context: rc.context, reader, index };
    regionState.set(region, state);
    pods.set(region, index);
    return state;
  };

  /** The watches one region needs for `scopes` (namespaces, or one cluster-wide scope), by key. */
  const wanted = (region: string, rc: { context: string }, scopes: (string | undefined)[]) => {
    const { reader, index } = regionOf(region, rc);
    const out = new Map<string, () => ListWatch<KubernetesObject>>();

    const onPod = async (type: string, pod: V1Pod) => {
      if (!nsSet.has(pod.metadata?.namespace ?? '')) return;
      if (type === 'DELETED') index.gone(pod);
      else index.put(pod);
      for (const f of oomFromPod(pod, region)) await report(f);
    };
    const onEvent = async (_type: string, ev: CoreV1Event) => {
      if (!isOomEvent(ev)) return;
      let pod: V1Pod | undefined;
      if (ev.involvedObject.kind === 'Pod') {
        if (!nsSet.has(ev.involvedObject.namespace ?? '')) return;
        pod = ev.involvedObject.uid ? await index.byUid(ev.involvedObject.uid) : undefined;
        const f = oomFromEvent(ev, pod, region);
        if (f) await report(f);
        return;
      }
      // A node-level kernel OOM event: find the pod by the cgroup path in its message.
      const ref = podRefFromKernelMessage(ev.message ?? '');
      if (!ref.podUid) {
        o.log.info({ region, reason: ev.reason, message: ev.message }, 'node OOM event not tied to a pod');
        return;
      }
      pod = await index.byUid(ref.podUid);
      if (!pod) return;
      const f = oomFromEvent(
        {
          ...ev,
          involvedObject: {
            kind: 'Pod',
            name: pod.metadata?.name,
            namespace: pod.metadata?.namespace,
            uid: pod.metadata?.uid,
          },
        },
        pod,
        region,
      );
      if (f) await report(f);
    };

    /** One list+watch of a resource in this region; the lists differ only in which API call they make. */
    const watch = <T extends KubernetesObject>(spec: {
      name: string;
      path: string;
      fieldSelector?: string;
      list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>;
      onObject: (type: string, obj: T) => Promise<void>;
      keep?: (obj: T) => T;
    }) => {
      out.set(
        `${region}\0${rc.context}\0${spec.name}`,
        () =>
          new ListWatch<T>({
            name: `${region}/${spec.name}`,
            kc: reader.kc,
            path: spec.path,
            ...(spec.fieldSelector ? { fieldSelector: spec.fieldSelector } : {}),
            list: spec.list,
            onObject: spec.onObject,
            ...(spec.keep ? { keep: spec.keep } : {}),
            log: o.log,
            ...(o.relistMs ? { relistMs: o.relistMs } : {}),
          }).start() as unknown as ListWatch<KubernetesObject>,
      );
    };

    for (const ns of scopes) {
      if (ns !== undefined) {
        watch<V1Pod>({
          name: `pods/${ns}`,
          path: `/api/v1/namespaces/${ns}/pods`,
          list: () => reader.core.listNamespacedPod({ namespace: ns }),
          onObject: onPod,
        });
        watch<CoreV1Event>({
          name: `events/${ns}`,
          path: `/api/v1/namespaces/${ns}/events`,
          list: () => reader.core.listNamespacedEvent({ namespace: ns }),
          onObject: onEvent,
        });
        continue;
      }
      // Every pod, listed in pages and kept as projections (slimPod): the list of a large
      // cluster is never held whole.
      watch<V1Pod>({
        name: 'pods/*',
        path: '/api/v1/pods',
        list: () => pagedPods(reader, {}),
        onObject: onPod,
        keep: slimPod,
      });
      // Only OOM events, selected by the server (one watch a reason: field selectors cannot OR).
      // These also cover the node-level kernel events in `default`.
      for (const reason of OOM_EVENT_REASONS) {
        const query = { fieldSelector: `reason=${reason}` };
        watch<CoreV1Event>({
          name: `events/*/${reason}`,
          path: '/api/v1/events',
          fieldSelector: query.fieldSelector,
          list: () => reader.core.listEventForAllNamespaces(query),
          onObject: onEvent,
        });
      }
    }
    // kernel OOM events about nodes (SystemOOM from the kubelet, OOMKilling from node-problem-detector)
    const nodeQuery = { fieldSelector: 'involvedObject.kind=Node' };
    watch<CoreV1Event>({
      name: 'node-events',
      path: '/api/v1/namespaces/default/events',
      fieldSelector: nodeQuery.fieldSelector,
      list: () => reader.core.listNamespacedEvent({ namespace: 'default', ...nodeQuery }),
      onObject: onEvent,
    });
    return out;
  };

  /**
   * Brings the watches in line with `c`: starts those of namespaces and regions it adds, stops those
   * of the ones it removes, keeps the rest running (no re-list). Resolves when the new ones have listed.
   */
  const reconcile = (c: FerryConfig): Promise<void> => {
    namespaces = managedNamespaces(c);
    nsSet = new Set(namespaces);
    const regions = o.regions ?? Object.keys(c.regions);
    const want = new Map<string, () => ListWatch<KubernetesObject>>();
    for (const region of regions) {
      const rc = c.regions[region];
      if (!rc) {
        if (o.regions) throw new Error(`unknown region ${region}`);
        continue;
      }
      regionOf(region, rc);
      if (o.watchApi === false) continue;
      const clusterWide = namespaces.length > (o.clusterWideAbove ?? 50);
      for (const [key, make] of wanted(region, rc, clusterWide ? [undefined] : namespaces))
        want.set(key, make);
    }
    for (const [key, w] of running) {
      if (want.has(key)) continue;
      w.stop();
      running.delete(key);
    }
    const started: Promise<void>[] = [];
    for (const [key, make] of want) {
      if (running.has(key)) continue;
      const w = make();
      running.set(key, w);
      started.push(w.ready);
    }
    return Promise.all(started).then(() => undefined);
  };

  const firstWatches = reconcile(config);
  let stopped = false;
  let changes = Promise.resolve();
  const unsubscribe = o.configChanges?.((c) => {
    if (stopped) return;
    const before = new Set(running.keys());
    changes = changes
      .then(() => (stopped ? undefined : reconcile(c)))
      .then(
        () => {
          const added = [...running.keys()].filter((k) => !before.has(k)).length;
          const removed = [...before].filter((k) => !running.has(k)).length;
          if (added || removed)
            o.log.info({ added, removed, namespaces: namespaces.length }, 'watches follow the config');
        },
        (err) => o.log.warn({ err: (err as Error).message }, 'watches could not follow the config'),
      );
  });

  const agentStarts: Promise<unknown>[] = [];
  for (const t of o.nodeAgents ?? []) {
    // An agent alone (the DaemonSet) asks only for its own node's pods on a miss.
    const node = t.node;
    const rc = config.regions[t.region];
    const index =
      o.watchApi === false && node && rc
        ? new PodIndex(
            async () =>
              (await pagedPods(cluster(rc.context), { fieldSelector: `spec.nodeName=${node}` })).items,
          )
        : (pods.get(t.region) ?? new PodIndex());
    const agent = new NodeAgent({
      region: t.region,
      ...(t.node ? { node: t.node } : {}),
      roots: t.roots,
      pods: index,
      onFinding: report,
      log: o.log,
      ...(o.pollMs ? { pollMs: o.pollMs } : {}),
      ...(o.agentNotify !== undefined ? { notify: o.agentNotify } : {}),
    });
    agents.push(agent);
    agentStarts.push(agent.start());
  }

  return {
    alerter,
    silences,
    dedupe,
    get watches() {
      return [...running.values()];
    },
    agents,
    pods,
    ready: Promise.all([firstWatches, ...agentStarts]).then(() => undefined),
    settled: () => changes,
    async stop() {
      stopped = true;
      unsubscribe?.();
      for (const w of running.values()) w.stop();
      running.clear();
      for (const a of agents) a.stop();
    },
  };
}

/** Pods listed in pages of `limit` (each page projected by slimPod), with the list's resourceVersion. */
export async function pagedPods(
  reader: ClusterReader,
  query: { fieldSelector?: string; labelSelector?: string },
  limit = 500,
): Promise<{ items: V1Pod[]; metadata?: { resourceVersion?: string } }> {
  const items: V1Pod[] = [];
  let cont: string | undefined;
  let resourceVersion: string | undefined;
  do {
    const page = await reader.core.listPodForAllNamespaces({
      ...query,
      limit,
      ...(cont ? { _continue: cont } : {}),
    });
    for (const p of page.items) items.push(slimPod(p));
    resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    cont = page.metadata?._continue || undefined;
  } while (cont);
  return { items, ...(resourceVersion ? { metadata: { resourceVersion } } : {}) };
}
