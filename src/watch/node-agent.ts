// The node agent: OOM kills seen by the memory cgroups on a node. Kubernetes
// reports a container as OOMKilled only when its main process dies; a kill of
// any other process in the container (a worker, a child JVM, a shell-out) is
// reported nowhere but in the cgroup. The agent reads each container cgroup's
// kill counter — cgroup v2 `memory.events` or cgroup v1 `memory.oom_control`
// (`oom_kill N`, kernels ≥ 4.13) — when it changes:
//
// - cgroup v2: by notification. The kernel signals a change of memory.events
//   to inotify watchers (cgroup_file_notify), and node:fs `watch` is inotify,
//   so the counter is read within moments of the kill;
// - cgroup v1: by polling every `pollMs` (100 ms). v1 announces an OOM only
//   through an eventfd registered in cgroup.event_control, and Node has no way
//   to create an eventfd without native code; its files send no inotify
//   events. One small read per container per poll is cheap;
// - a v2 cgroup whose watch cannot be set up falls back to polling, with a
//   warning naming the reason.
//
// It maps the cgroup path
// (…/pod<uid>/<container id>, or the systemd slice form) to the pod and
// container through the API and reports a finding per kill.
//
// A kill that ends the container (its cgroup is empty afterwards) is the main
// process: it carries the same occurrence id as the pod-status path
// (`main:<container id>`), so whichever source is first alerts and the other
// is a duplicate. Any other kill is a child process: `cgroup:<id>:<n>`.

import { type FSWatcher, watch } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Pod } from '@kubernetes/client-node';
import { ownerOf } from '../kube/logs.ts';
import type { Logger } from '../logging.ts';
import {
  bareContainerId,
  containerResources,
  environmentOfPod,
  formatBytes,
  type OomFinding,
} from './oom.ts';
import type { PodIndex } from './pods.ts';

export interface NodeAgentOptions {
  region: string;
  node?: string;
  /** Directories under which container memory cgroups live, e.g. /sys/fs/cgroup/memory/kubepods. */
  roots: string[];
  pods: PodIndex;
  onFinding: (f: OomFinding) => Promise<unknown>;
  log: Logger;
  /** Poll interval for cgroups that cannot notify (v1, or a failed watch). Default 100 ms. */
  pollMs?: number;
  /** Use inotify on cgroup v2 memory.events (default true); false polls every cgroup. */
  notify?: boolean;
  /** Re-scan the directory tree for new containers this often (default: every second). */
  scanMs?: number;
  /** How long to wait before deciding main vs child (the container's tasks to exit). */
  settleMs?: number;
  /** The host's /proc (default /proc; /host/proc in a DaemonSet without hostPID). */
  procRoot?: string;
}

export interface ContainerCgroup {
  dir: string;
  podUid: string;
  containerId: string;
  version: 1 | 2;
}

const CONTAINER_RE =
  /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?\/(?:cri-containerd-|crio-|docker-)?([0-9a-f]{64})(?:\.scope)?$/;

/** Pod UID and container id from a container cgroup path (cgroupfs or systemd layout). */
export function parseCgroupPath(path: string): { podUid: string; containerId: string } | undefined {
  const m = CONTAINER_RE.exec(path.replace(/\/+$/, ''));
  if (!m) return undefined;
  return { podUid: (m[1] as string).replace(/_/g, '-'), containerId: m[2] as string };
}

/** `oom_kill N` from memory.oom_control (v1) or memory.events (v2). */
export function parseOomKill(text: string): number | undefined {
  const m = /^oom_kill (\d+)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

async function exists(path: string): Promise<boolean> {
  try {
    await readFile(path);
    return true;
  } catch {
    return false;
  }
}

/** Finds container cgroups under the roots (skipping into containers' own sub-cgroups). */
export async function scanCgroups(roots: readonly string[], maxDepth = 8): Promise<ContainerCgroup[]> {
  const out: ContainerCgroup[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    const ref = parseCgroupPath(dir);
    if (ref) {
      // hybrid hierarchies list the container under cgroup2 too, without memory files: skip those
      if (await exists(join(dir, 'memory.oom_control'))) out.push({ dir, ...ref, version: 1 });
      else if (await exists(join(dir, 'memory.events'))) out.push({ dir, ...ref, version: 2 });
      return;
    }
    if (depth >= maxDepth) return;
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => walk(join(dir, e.name), depth + 1)));
  };
  await Promise.all(roots.map((r) => walk(r, 0)));
  return out;
}

interface Tracked {
  cg: ContainerCgroup;
  kills: number;
  missing: number;
  /** The inotify watch on memory.events (v2); absent: the cgroup is polled. */
  watcher?: FSWatcher;
  /** A check is running; `again` asks for one more when it ends (a change seen meanwhile). */
  checking?: Promise<void>;
  again?: boolean;
}

/** How a cgroup's kills are found. */
export type DetectionMode = 'inotify' | 'poll';

export class NodeAgent {
  private readonly o: NodeAgentOptions;
  private readonly tracked = new Map<string, Tracked>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private first = true;
  private lastScan = 0;
  private announced = false;
  readonly stats = { polls: 0, containers: 0, kills: 0, notified: 0, watched: 0, polled: 0 };

  constructor(o: NodeAgentOptions) {
    this.o = o;
  }

  async start(): Promise<this> {
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.o.pollMs ?? 100);
    this.timer.unref?.();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    for (const t of this.tracked.values()) t.watcher?.close();
  }

  /** How the container cgroup at `dir` is watched (undefined: not tracked). */
  modeOf(dir: string): DetectionMode | undefined {
    const t = this.tracked.get(dir);
    return t ? (t.watcher ? 'inotify' : 'poll') : undefined;
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      if (this.first || Date.now() - this.lastScan >= (this.o.scanMs ?? 1000)) {
        this.lastScan = Date.now();
        for (const cg of await scanCgroups(this.o.roots)) {
          if (this.tracked.has(cg.dir)) continue;
          // Containers present at start: count from what they show now (older kills are history).
          // Containers that appear later: every kill counts, even one before the first poll.
          const kills = this.first ? ((await this.readKills(cg)) ?? 0) : 0;
          const t: Tracked = { cg, kills, missing: 0 };
          this.tracked.set(cg.dir, t);
          this.watchEvents(t);
          // a kill between the scan and the watch: the first check sees it
          if (!this.first) void this.checkSoon(t);
        }
        this.stats.containers = this.tracked.size;
        this.announce();
      }
      this.first = false;
      this.stats.polls++;
      await Promise.all([...this.tracked.values()].filter((t) => !t.watcher).map((t) => this.checkSoon(t)));
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'node agent poll failed');
    } finally {
      this.running = false;
    }
  }

  /** cgroup v2: an inotify watch on memory.events; any failure leaves the cgroup to polling. */
  private watchEvents(t: Tracked): void {
    if (t.cg.version !== 2 || this.o.notify === false) return;
    try {
      const w = watch(join(t.cg.dir, 'memory.events'), { persistent: false });
      w.on('change', () => {
        this.stats.notified++;
        void this.checkSoon(t);
      });
      w.on('error', (err) => {
        // the cgroup went away (container removed) or the watch broke: poll it from now on
        w.close();
        if (t.watcher === w) t.watcher = undefined;
        this.o.log.debug({ cgroup: t.cg.dir, err: err.message }, 'memory.events watch ended; polling');
      });
      t.watcher = w;
    } catch (err) {
      this.o.log.warn(
        { cgroup: t.cg.dir, err: (err as Error).message, pollMs: this.o.pollMs ?? 100 },
        'inotify on memory.events unavailable: polling this cgroup for OOM kills instead',
      );
    }
  }

  /** One log line saying how kills are found, when the set of containers first shows it. */
  private announce(): void {
    const all = [...this.tracked.values()];
    this.stats.watched = all.filter((t) => t.watcher).length;
    this.stats.polled = all.length - this.stats.watched;
    if (this.announced || all.length === 0) return;
    this.announced = true;
    const v1 = all.filter((t) => t.cg.version === 1).length;
    this.o.log.info(
      {
        region: this.o.region,
        inotify: this.stats.watched,
        polled: this.stats.polled,
        pollMs: this.o.pollMs ?? 100,
      },
      v1 > 0
        ? 'node agent: cgroup v1 memory: OOM kills found by polling memory.oom_control (v1 notifies only through an eventfd, which Node cannot create without native code)'
        : this.stats.polled > 0
          ? 'node agent: cgroup v2 memory: some cgroups polled (inotify on memory.events unavailable or disabled)'
          : 'node agent: cgroup v2 memory: OOM kills notified by inotify on memory.events',
    );
  }

  /** Runs a check, or asks the running one to look again when it ends. */
  private checkSoon(t: Tracked): Promise<void> {
    if (t.checking) {
      t.again = true;
      return t.checking;
    }
    t.checking = (async () => {
      try {
        do {
          t.again = false;
          await this.check(t);
        } while (t.again);
      } finally {
        t.checking = undefined;
      }
    })();
    return t.checking;
  }

  /** The kill counter; null when the file cannot be read (the cgroup is gone), undefined when it has none. */
  private async readKills(cg: ContainerCgroup): Promise<number | null | undefined> {
    let text: string;
    try {
      text = await readFile(join(cg.dir, cg.version === 1 ? 'memory.oom_control' : 'memory.events'), 'utf8');
    } catch {
      return null;
    }
    return parseOomKill(text);
  }

  private async check(t: Tracked): Promise<void> {
    const kills = await this.readKills(t.cg);
    if (kills === undefined) return; // no counter in it (a kernel before 4.13): nothing to learn
    if (kills === null) {
      // the cgroup is gone (container removed)
      if (++t.missing > 3 || t.watcher) {
        t.watcher?.close();
        this.tracked.delete(t.cg.dir);
      }
      return;
    }
    t.missing = 0;
    if (kills <= t.kills) return;
    const from = t.kills;
    t.kills = kills;
    this.stats.kills += kills - from;
    const detectedAt = Date.now();
    const main = await this.mainProcessDied(t.cg);
    const limit = await this.limitOf(t.cg);
    for (let n = from + 1; n <= kills; n++) {
      const victim: 'main' | 'child' = main && n === kills ? 'main' : 'child';
      const f = await this.finding(t.cg, victim, n, detectedAt, limit);
      if (!f) {
        this.o.log.info({ cgroup: t.cg.dir }, 'OOM kill in a cgroup of an unknown pod');
        continue;
      }
      await this.o
        .onFinding(f)
        .catch((err) =>
          this.o.log.warn({ err: (err as Error).message, pod: f.pod }, 'node agent alert failed'),
        );
    }
  }

  /**
   * Whether the kill ended the container's main process. The kernel raises
   * the counter just before it sends SIGKILL, so after a moment's grace a
   * container init that is alive with no kill pending means a child died: no
   * need to wait. Otherwise let the container settle: if its main process
   * died, its tasks are gone within moments.
   */
  private async mainProcessDied(cg: ContainerCgroup): Promise<boolean> {
    await sleep(20);
    if (await this.initAlive(cg)) return false;
    const settle = this.o.settleMs ?? 150;
    await sleep(settle);
    if (await this.emptied(cg)) return true;
    if (await this.initAlive(cg)) return false;
    // not sure the main process survived (no /proc view of it): give it time to go too
    await sleep(settle * 4);
    return this.emptied(cg);
  }

  /** True when no task is left in the container's cgroup (or it is gone): its main process died. */
  private async emptied(cg: ContainerCgroup): Promise<boolean> {
    try {
      return (await readFile(join(cg.dir, 'cgroup.procs'), 'utf8')).trim() === '';
    } catch {
      return true;
    }
  }

  /**
   * True when the container's init (pid 1 in its pid namespace) is among the
   * cgroup's tasks, alive, with no SIGKILL pending: then the kill hit another
   * process. Needs the host's /proc (a host process, or hostPID in the DaemonSet);
   * false when it cannot tell.
   */
  private async initAlive(cg: ContainerCgroup): Promise<boolean> {
    let pids: string[];
    try {
      pids = (await readFile(join(cg.dir, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean);
    } catch {
      return false;
    }
    for (const pid of pids.slice(0, 64)) {
      let status: string;
      try {
        status = await readFile(`${this.o.procRoot ?? '/proc'}/${pid}/status`, 'utf8');
      } catch {
        continue;
      }
      const nspid = /^NSpid:\s*(.+)$/m.exec(status)?.[1]?.trim().split(/\s+/);
      if (!nspid || nspid.length < 2 || nspid.at(-1) !== '1') continue;
      const state = /^State:\s*(\S)/m.exec(status)?.[1];
      const killPending = ['SigPnd', 'ShdPnd'].some((k) => {
        const hex = new RegExp(`^${k}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1];
        return hex ? (BigInt(`0x${hex}`) & 0x100n) !== 0n : false; // bit 9: SIGKILL
      });
      return state !== 'Z' && state !== 'X' && !killPending;
    }
    return false;
  }

  private async limitOf(cg: ContainerCgroup): Promise<number | undefined> {
    try {
      const text = (
        await readFile(join(cg.dir, cg.version === 1 ? 'memory.limit_in_bytes' : 'memory.max'), 'utf8')
      ).trim();
      const n = Number(text);
      return Number.isFinite(n) && n > 0 && n < 2 ** 60 ? n : undefined;
    } catch {
      return undefined;
    }
  }

  private async finding(
    cg: ContainerCgroup,
    victim: 'main' | 'child',
    n: number,
    detectedAt: number,
    limitBytes: number | undefined,
  ): Promise<OomFinding | undefined> {
    let pod: V1Pod | undefined = await this.o.pods.byUid(cg.podUid);
    if (!pod) return undefined;
    const name = (p: V1Pod) =>
      [...(p.status?.containerStatuses ?? []), ...(p.status?.initContainerStatuses ?? [])].find(
        (s) =>
          bareContainerId(s.containerID) === cg.containerId ||
          bareContainerId(s.lastState?.terminated?.containerID) === cg.containerId,
      )?.name;
    let container = name(pod);
    if (!container) {
      // a brand-new container: the pod in the index may predate it
      await this.o.pods.refresh(0);
      pod = (await this.o.pods.byUid(cg.podUid, false)) ?? pod;
      container = name(pod);
    }
    if (!container && pod.spec?.containers.length === 1) container = pod.spec.containers[0]?.name;
    if (!container) return undefined;
    const res = containerResources(pod, container);
    const status = pod.status?.containerStatuses?.find((s) => s.name === container);
    return {
      source: 'cgroup',
      region: this.o.region,
      namespace: pod.metadata?.namespace ?? '',
      pod: pod.metadata?.name ?? '',
      podUid: cg.podUid,
      container,
      owner: ownerOf(pod).name,
      ...(pod.spec?.nodeName || this.o.node ? { node: pod.spec?.nodeName ?? this.o.node } : {}),
      victim,
      occurrence: victim === 'main' ? `main:${cg.containerId}` : `cgroup:${cg.containerId}:${n}`,
      ...(status ? { restartCount: status.restartCount } : {}),
      ...(res.limit
        ? { memoryLimit: res.limit }
        : limitBytes
          ? { memoryLimit: formatBytes(limitBytes) }
          : {}),
      ...(res.request ? { memoryRequest: res.request } : {}),
      killedAt: detectedAt,
      detectedAt,
      detail: `oom_kill #${n} in the container's memory cgroup`,
      ...(pod.metadata?.labels ? { labels: pod.metadata.labels } : {}),
      ...(environmentOfPod(pod) ? { environment: environmentOfPod(pod) } : {}),
    };
  }
}
