// The node agent: OOM kills seen by the memory cgroups on a node. Kubernetes
// reports a container as OOMKilled only when its main process dies; a kill of
// any other process in the container (a worker, a child JVM, a shell-out) is
// reported nowhere but in the cgroup. The agent polls each container cgroup's
// kill counter — cgroup v1 `memory.oom_control` (`oom_kill N`, kernels ≥ 4.13)
// or cgroup v2 `memory.events` (`oom_kill N`) — every `pollMs` (Node cannot
// create the eventfd that cgroup.event_control needs, and polling one small
// file per container is cheap). It maps the cgroup path
// (…/pod<uid>/<container id>, or the systemd slice form) to the pod and
// container through the API and reports a finding per kill.
//
// A kill that ends the container (its cgroup is empty afterwards) is the main
// process: it carries the same occurrence id as the pod-status path
// (`main:<container id>`), so whichever source is first alerts and the other
// is a duplicate. Any other kill is a child process: `cgroup:<id>:<n>`.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
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
  pollMs?: number;
  /** Re-scan the directory tree for new containers this often (default: every poll). */
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
}

export class NodeAgent {
  private readonly o: NodeAgentOptions;
  private readonly tracked = new Map<string, Tracked>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private first = true;
  private lastScan = 0;
  readonly stats = { polls: 0, containers: 0, kills: 0 };

  constructor(o: NodeAgentOptions) {
    this.o = o;
  }

  async start(): Promise<this> {
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.o.pollMs ?? 500);
    this.timer.unref?.();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      if (this.first || Date.now() - this.lastScan >= (this.o.scanMs ?? 0)) {
        this.lastScan = Date.now();
        for (const cg of await scanCgroups(this.o.roots)) {
          if (this.tracked.has(cg.dir)) continue;
          // Containers present at start: count from what they show now (older kills are history).
          // Containers that appear later: every kill counts, even one before the first poll.
          const kills = this.first ? ((await this.readKills(cg)) ?? 0) : 0;
          this.tracked.set(cg.dir, { cg, kills, missing: 0 });
        }
        this.stats.containers = this.tracked.size;
      }
      this.first = false;
      this.stats.polls++;
      await Promise.all([...this.tracked.values()].map((t) => this.check(t)));
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'node agent poll failed');
    } finally {
      this.running = false;
    }
  }

  private async readKills(cg: ContainerCgroup): Promise<number | undefined> {
    try {
      const file = cg.version === 1 ? 'memory.oom_control' : 'memory.events';
      return parseOomKill(await readFile(join(cg.dir, file), 'utf8'));
    } catch {
      return undefined;
    }
  }

  private async check(t: Tracked): Promise<void> {
    const kills = await this.readKills(t.cg);
    if (kills === undefined) {
      // the cgroup is gone (container removed)
      if (++t.missing > 3) this.tracked.delete(t.cg.dir);
      return;
    }
    t.missing = 0;
    if (kills <= t.kills) return;
    const from = t.kills;
    t.kills = kills;
    this.stats.kills += kills - from;
    const detectedAt = Date.now();
    // Let the container settle: if its main process died, its tasks are gone within moments.
    const settle = this.o.settleMs ?? 150;
    await new Promise((r) => setTimeout(r, settle));
    let main = await this.emptied(t.cg);
    if (!main && !(await this.initAlive(t.cg))) {
      // not sure the main process survived (no /proc view of it): give it time to go too
      await new Promise((r) => setTimeout(r, settle * 4));
      main = await this.emptied(t.cg);
    }
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
