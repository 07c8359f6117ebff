// Where the node agent looks for memory cgroups.
//
// - In a cluster (deploy/agent/daemonset.yaml): one agent per node, with the
//   host's /sys/fs/cgroup mounted read-only at /host/sys/fs/cgroup; the region
//   from FERRY_REGION and the node from NODE_NAME (downward API).
// - On one machine (tests, demo): the local clusters' kubelets run here; each
//   node's cgroupRoot comes from infra/infra.sh's infra.json.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { FerryConfig } from '../domain/config.ts';
import type { NodeAgentTarget } from './watcher.ts';

/** Memory cgroup directories for a kubelet cgroupRoot, v1 and v2 layouts (whichever exist). */
export function cgroupRootsFor(cgroupRoot: string, sysfs = '/sys/fs/cgroup'): string[] {
  const root = cgroupRoot.replace(/^\/+/, '');
  const candidates = [
    join(sysfs, 'memory', root), // cgroup v1 memory controller
    join(sysfs, root), // cgroup v2 unified at /sys/fs/cgroup
    join(sysfs, 'unified', root), // hybrid: v2 at /sys/fs/cgroup/unified (memory stays on v1)
  ];
  return candidates.filter((d) => existsSync(d));
}

/** Targets from the environment of a DaemonSet pod; undefined when not set. */
export function targetsFromEnv(env: NodeJS.ProcessEnv = process.env): NodeAgentTarget[] | undefined {
  if (!env.FERRY_REGION) return undefined;
  const roots = (
    env.FERRY_CGROUP_ROOTS ??
    '/host/sys/fs/cgroup/memory/kubepods:/host/sys/fs/cgroup/kubepods.slice:/host/sys/fs/cgroup/kubepods'
  )
    .split(':')
    .filter((d) => d && existsSync(d));
  return [{ region: env.FERRY_REGION, ...(env.NODE_NAME ? { node: env.NODE_NAME } : {}), roots }];
}

interface InfraJson {
  kubernetes?: { contexts?: Record<string, { context: string; node: string; cgroupRoot: string }> };
}

/** Targets for the local clusters of infra/infra.sh, for the regions in the config whose context it runs. */
export function localTargets(config: FerryConfig, env: NodeJS.ProcessEnv = process.env): NodeAgentTarget[] {
  const runDir = env.FERRY_RUN_DIR ?? join(env.FERRY_CACHE ?? join(homedir(), '.cache', 'ferry'), 'run');
  const file = join(runDir, 'infra.json');
  if (!existsSync(file)) return [];
  const info = JSON.parse(readFileSync(file, 'utf8')) as InfraJson;
  const clusters = Object.values(info.kubernetes?.contexts ?? {});
  const out: NodeAgentTarget[] = [];
  for (const [region, rc] of Object.entries(config.regions)) {
    const c = clusters.find((x) => x.context === rc.context);
    if (!c) continue;
    const roots = cgroupRootsFor(c.cgroupRoot);
    if (roots.length) out.push({ region, node: c.node, roots });
  }
  return out;
}
