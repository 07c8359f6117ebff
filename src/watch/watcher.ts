// `ferry watch`: watches pods and events in the namespaces of the managed
// apps in every region, and turns OOM kills into alerts. Optionally runs the
// node agent (cgroup OOM counters) for nodes on this machine.
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import type { Redis } from 'ioredis';
import type { FerryConfig } from '../config/schema.ts';
import type { Announcer, ReleaseRepository } from '../domain/ports.ts';
import { managedNamespaces } from '../domain/workload.ts';
import { type ClusterReader, clusterReader } from '../kube/logs.ts';
import type { Logger } from '../logging.ts';
import { Alerter, type AlerterDeps, type AlertOutcome } from './alerter.ts';
import { AlertDedupe } from './dedupe.ts';
import { ListWatch } from './list-watch.ts';
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
  pollMs?: number;
  /** Above this many namespaces in a region, one cluster-wide watch replaces per-namespace ones. */
  clusterWideAbove?: number;
  onAlert?: AlerterDeps['onAlert'];
  onOutcome?: (f: OomFinding, outcome: AlertOutcome) => void;
}

export interface WatchHandle {
  alerter: Alerter;
  silences: Silences;
  dedupe: AlertDedupe;
  watches: ListWatch<unknown>[];
  agents: NodeAgent[];
  pods: Map<string, PodIndex>;
  /** Resolves when every watch has listed once and every agent has taken its first reading. */
  ready: Promise<void>;
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
    ...(o.onAlert ? { onAlert: o.onAlert } : {}),
  });
  const report = async (f: OomFinding) => {
    const outcome = await alerter.handle(f);
    o.onOutcome?.(f, outcome);
    if (outcome !== 'duplicate' && outcome !== 'stale')
      o.log.debug({ outcome, occurrence: f.occurrence, source: f.source }, 'OOM finding');
    return outcome;
  };
  const watches: ListWatch<unknown>[] = [];
  const agents: NodeAgent[] = [];
  const pods = new Map<string, PodIndex>();
  const regions = o.regions ?? Object.keys(config.regions);
  const namespaces = managedNamespaces(config);
  const nsSet = new Set(namespaces);

  for (const region of regions) {
    const rc = config.regions[region];
    if (!rc) throw new Error(`unknown region ${region}`);
    const reader = cluster(rc.context);
    const clusterWide = namespaces.length > (o.clusterWideAbove ?? 50);
    // Past a few dozen namespaces one paged cluster-wide list is cheaper than a list per namespace
    // (a miss of the node agent used to cost one request per managed namespace).
    const index = new PodIndex(
      clusterWide
        ? async () =>
            (await pagedPods(reader, {})).items.filter((p) => nsSet.has(p.metadata?.namespace ?? ''))
        : async () => {
            const lists = await Promise.all(namespaces.map((namespace) => reader.pods(namespace)));
            return lists.flat();
          },
    );
    pods.set(region, index);
    if (o.watchApi === false) continue;

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
    const watch = <T>(spec: {
      name: string;
      path: string;
      query?: Record<string, string>;
      list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>;
      onObject: (type: string, obj: T) => Promise<void>;
    }) => {
      watches.push(
        new ListWatch<T>({
          name: `${region}/${spec.name}`,
          kc: reader.kc,
          path: spec.path,
          ...(spec.query ? { query: spec.query } : {}),
          list: async () => {
            const l = await spec.list();
            return {
              items: l.items,
              ...(l.metadata?.resourceVersion ? { resourceVersion: l.metadata.resourceVersion } : {}),
            };
          },
          onObject: spec.onObject,
          log: o.log,
          ...(o.relistMs ? { relistMs: o.relistMs } : {}),
        }).start() as ListWatch<unknown>,
      );
    };

    if (clusterWide) {
      // Every pod, listed in pages and kept as projections (slimPod): the list of a large
      // cluster is never held whole.
      watch<V1Pod>({
        name: 'pods/*',
        path: '/api/v1/pods',
        list: () => pagedPods(reader, {}),
        onObject: onPod,
      });
      // Only OOM events, selected by the server (one watch a reason: field selectors cannot OR).
      // These also cover the node-level kernel events in `default`.
      for (const reason of OOM_EVENT_REASONS) {
        const query = { fieldSelector: `reason=${reason}` };
        watch<CoreV1Event>({
          name: `events/*/${reason}`,
          path: '/api/v1/events',
          query,
          list: () => reader.core.listEventForAllNamespaces(query),
          onObject: onEvent,
        });
      }
      continue;
    }
    for (const ns of namespaces) {
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
    }
    // kernel OOM events about nodes (SystemOOM from the kubelet, OOMKilling from node-problem-detector)
    const nodeQuery = { fieldSelector: 'involvedObject.kind=Node' };
    watch<CoreV1Event>({
      name: 'node-events',
      path: '/api/v1/namespaces/default/events',
      query: nodeQuery,
      list: () => reader.core.listNamespacedEvent({ namespace: 'default', ...nodeQuery }),
      onObject: onEvent,
    });
  }

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
    });
    agents.push(agent);
    agentStarts.push(agent.start());
  }

  return {
    alerter,
    silences,
    dedupe,
    watches,
    agents,
    pods,
    ready: Promise.all([...watches.map((w) => w.ready), ...agentStarts]).then(() => undefined),
    async stop() {
      for (const w of watches) w.stop();
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
