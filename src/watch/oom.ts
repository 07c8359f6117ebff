// What an OOM kill looks like in each source, turned into one shape.
//
// - pod status: containerStatuses[].lastState.terminated (or state.terminated)
//   with reason OOMKilled — Kubernetes often emits no Event for it (#69676);
// - Events with reason OOMKilling (node-problem-detector, kernel log) or
//   SystemOOM (kubelet) naming a pod or a node;
// - the node agent: a memory cgroup's oom_kill counter went up — the only
//   source that sees a kill of a process other than the container's main one.
import type { CoreV1Event, V1Container, V1Pod } from '@kubernetes/client-node';
import { memoryBytes } from '../domain/workload.ts';
import { ownerOf } from '../kube/logs.ts';

export type OomSource = 'pod-status' | 'event' | 'cgroup';

export interface OomFinding {
  source: OomSource;
  region: string;
  namespace: string;
  pod: string;
  podUid?: string;
  container: string;
  /** Deployment (or other owner) name; the pod's name for a bare pod. */
  owner: string;
  node?: string;
  /** 'main' — the container's main process (the container restarted); 'child' — another process in it. */
  victim: 'main' | 'child' | 'unknown';
  /** Same id for every sighting of one kill, whichever source saw it. */
  occurrence: string;
  restartCount?: number;
  memoryLimit?: string;
  memoryRequest?: string;
  exitCode?: number;
  /** When the kill happened (as far as the source knows). */
  killedAt: number;
  /** When Ferry noticed it. */
  detectedAt: number;
  /** Extra text from the source (event message, victim process). */
  detail?: string;
  /** Labels of the pod (for app/environment mapping). */
  labels?: Record<string, string>;
  /** The environment the pod runs for, when the pod says (label or FERRY_ENV, set by Ferry's rollout). */
  environment?: string;
}

/** The environment a pod was deployed for: `ferry.dev/environment` label, else its containers' FERRY_ENV. */
export function environmentOfPod(pod: V1Pod | undefined): string | undefined {
  if (!pod) return undefined;
  const label = pod.metadata?.labels?.['ferry.dev/environment'];
  if (label) return label;
  for (const c of pod.spec?.containers ?? []) {
    const v = c.env?.find((e) => e.name === 'FERRY_ENV')?.value;
    if (v) return v;
  }
  return undefined;
}

/** Event reasons that report an OOM kill (the watcher selects events by them). */
export const OOM_EVENT_REASONS = new Set(['OOMKilling', 'SystemOOM', 'OOMKilled']);

/** A container id without its runtime prefix ("containerd://abc…" → "abc…"). */
export function bareContainerId(id: string | undefined): string | undefined {
  if (!id) return undefined;
  const i = id.indexOf('://');
  return i >= 0 ? id.slice(i + 3) : id;
}

export function containerResources(pod: V1Pod, container: string): { limit?: string; request?: string } {
  const c: V1Container | undefined = pod.spec?.containers.find((x) => x.name === container);
  const limit = c?.resources?.limits?.memory;
  const request = c?.resources?.requests?.memory;
  return { ...(limit ? { limit: String(limit) } : {}), ...(request ? { request: String(request) } : {}) };
}

function time(t: Date | string | undefined, fallback: number): number {
  if (!t) return fallback;
  const n = (t instanceof Date ? t : new Date(t)).getTime();
  return Number.isNaN(n) ? fallback : n;
}

/** OOM kills recorded in a pod's status, newest state first. */
export function oomFromPod(pod: V1Pod, region: string, now = Date.now()): OomFinding[] {
  const out: OomFinding[] = [];
  const owner = ownerOf(pod).name;
  for (const s of pod.status?.containerStatuses ?? []) {
    for (const t of [s.state?.terminated, s.lastState?.terminated]) {
      if (t?.reason !== 'OOMKilled') continue;
      const cid = bareContainerId(t.containerID) ?? bareContainerId(s.containerID);
      const res = containerResources(pod, s.name);
      out.push({
        source: 'pod-status',
        region,
        namespace: pod.metadata?.namespace ?? '',
        pod: pod.metadata?.name ?? '',
        ...(pod.metadata?.uid ? { podUid: pod.metadata.uid } : {}),
        container: s.name,
        owner,
        ...(pod.spec?.nodeName ? { node: pod.spec.nodeName } : {}),
        victim: 'main',
        occurrence: cid
          ? `main:${cid}`
          : `main:${pod.metadata?.uid}:${s.name}:${time(t.finishedAt, 0)}:${s.restartCount}`,
        restartCount: s.restartCount,
        ...(res.limit ? { memoryLimit: res.limit } : {}),
        ...(res.request ? { memoryRequest: res.request } : {}),
        exitCode: t.exitCode,
        killedAt: time(t.finishedAt, now),
        detectedAt: now,
        ...(pod.metadata?.labels ? { labels: pod.metadata.labels } : {}),
        ...(environmentOfPod(pod) ? { environment: environmentOfPod(pod) } : {}),
      });
    }
  }
  return out;
}

/** An OOM event about a pod (node-level events are returned with the node only; see `eventNode`). */
export function isOomEvent(ev: CoreV1Event): boolean {
  return OOM_EVENT_REASONS.has(ev.reason ?? '');
}

/**
 * A finding from an OOM Event that names a pod. `pod` is the pod it names
 * (looked up by the caller) so the finding can carry limits and owner.
 */
export function oomFromEvent(
  ev: CoreV1Event,
  pod: V1Pod | undefined,
  region: string,
  now = Date.now(),
): OomFinding | undefined {
  const obj = ev.involvedObject;
  if (obj.kind !== 'Pod' || !obj.name) return undefined;
  // fieldPath: spec.containers{name}
  const fromPath = /\{([^}]+)\}/.exec(obj.fieldPath ?? '')?.[1];
  const container =
    fromPath ??
    /container[ "]+([a-z0-9-]+)/i.exec(ev.message ?? '')?.[1] ??
    pod?.spec?.containers[0]?.name ??
    '?';
  const res = pod ? containerResources(pod, container) : {};
  const status = pod?.status?.containerStatuses?.find((s) => s.name === container);
  const at = time(ev.lastTimestamp ?? ev.eventTime ?? ev.firstTimestamp, now);
  // The same kill as the pod status reports (OOMKilled within a minute of the event): share its
  // occurrence id, so an event and the status of one kill are one sighting.
  const term = [status?.lastState?.terminated, status?.state?.terminated].find(
    (t) => t?.reason === 'OOMKilled' && Math.abs(time(t.finishedAt, 0) - at) <= 60_000,
  );
  const termCid = bareContainerId(term?.containerID);
  return {
    source: 'event',
    region,
    namespace: obj.namespace ?? ev.metadata?.namespace ?? '',
    pod: obj.name,
    ...(obj.uid ? { podUid: obj.uid } : {}),
    container,
    owner: pod ? ownerOf(pod).name : obj.name,
    ...(ev.source?.host || pod?.spec?.nodeName ? { node: ev.source?.host ?? pod?.spec?.nodeName } : {}),
    victim: termCid ? 'main' : 'unknown',
    // an event object counts repeats in `count`; each count is one kill
    occurrence: termCid
      ? `main:${termCid}`
      : `event:${ev.metadata?.uid ?? `${obj.uid}:${ev.reason}`}:${ev.count ?? 1}`,
    ...(status ? { restartCount: status.restartCount } : {}),
    ...(res.limit ? { memoryLimit: res.limit } : {}),
    ...(res.request ? { memoryRequest: res.request } : {}),
    killedAt: at,
    detectedAt: now,
    ...(ev.message ? { detail: `${ev.reason}: ${ev.message}` } : {}),
    ...(pod?.metadata?.labels ? { labels: pod.metadata.labels } : {}),
    ...(environmentOfPod(pod) ? { environment: environmentOfPod(pod) } : {}),
  };
}

/** A kernel OOM message naming a pod by its cgroup ("…/kubepods/burstable/pod<uid>/<cid>…"). */
export function podRefFromKernelMessage(message: string): { podUid?: string; containerId?: string } {
  const m =
    /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?\/(?:cri-containerd-|docker-|crio-)?([0-9a-f]{64})?/.exec(
      message,
    );
  if (!m) return {};
  return {
    podUid: (m[1] as string).replace(/_/g, '-'),
    ...(m[2] ? { containerId: m[2] } : {}),
  };
}

/** "256Mi" → bytes (for messages); undefined when not a quantity. */
export function quantityBytes(q: string | undefined): number | undefined {
  return memoryBytes(q?.trim());
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${Math.round(n / 1024 ** 2)} MiB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KiB`;
  return `${n} B`;
}
