// `ferry watch`: OOM alerts. Watches pods and events of the managed apps in
// every region; with the node agent (`ferry watch node-agent`, `--node-agent`
// or FERRY_NODE_AGENT=1) it also reads memory-cgroup OOM counters on this
// node. In the local run (infra/infra.sh clusters on this machine) the agent
// runs inside `ferry watch` for every local node unless FERRY_NODE_AGENT=0.
//
//   ferry watch                  pods + events (+ local node agents when the clusters are local)
//   ferry watch node-agent       the node agent alone (the DaemonSet's command)
import { Health, healthFromEnv, kubeReadyForRegions, readinessUsesKube, redisReady } from '../health.ts';
import { createRuntime } from '../runtime.ts';
import { localTargets, targetsFromEnv } from '../watch/targets.ts';
import { startWatch } from '../watch/watcher.ts';
import type { CliIO, ProcessOptions } from './main.ts';

export async function run(opts: ProcessOptions, io: CliIO): Promise<number> {
  const agentOnly =
    opts.args.includes('node-agent') ||
    opts.args.includes('--node-agent') ||
    process.argv.includes('--node-agent');
  const rt = createRuntime({
    config: opts.configPath,
    name: agentOnly ? 'node-agent' : 'watch',
    ...(process.env.FERRY_PREFIX ? { prefix: process.env.FERRY_PREFIX } : {}),
  });
  const config = rt.config();
  const agentSetting = process.env.FERRY_NODE_AGENT;
  const targets =
    agentSetting === '0'
      ? []
      : (targetsFromEnv() ??
        (agentOnly || agentSetting === '1' || !opts.noInfra ? localTargets(config) : []));
  if (agentOnly && targets.length === 0) {
    io.err(
      'ferry watch node-agent: no memory cgroups found (set FERRY_REGION, NODE_NAME, FERRY_CGROUP_ROOTS)',
    );
    await rt.close();
    return 1;
  }
  const handle = startWatch({
    config: rt.config,
    redis: rt.store,
    ...(rt.prefix ? { prefix: rt.prefix } : {}),
    announcer: rt.announcer,
    releases: rt.releases,
    log: rt.log,
    watchApi: !agentOnly,
    nodeAgents: targets,
    ...(process.env.FERRY_WATCH_RELIST_MS ? { relistMs: Number(process.env.FERRY_WATCH_RELIST_MS) } : {}),
    ...(process.env.FERRY_AGENT_POLL_MS ? { pollMs: Number(process.env.FERRY_AGENT_POLL_MS) } : {}),
  });
  // The node agent reads cgroups and writes to Redis; the watcher also lists and watches the API servers.
  const health = new Health({
    ready: [redisReady(rt.store), ...(readinessUsesKube(!agentOnly) ? kubeReadyForRegions(config) : [])],
  });
  const healthServer = await healthFromEnv(health, agentOnly ? 3104 : 3103, (m) =>
    io.err(`ferry watch: ${m}`),
  );
  if (healthServer) io.err(`ferry watch: /healthz /readyz /metrics on ${healthServer.url}`);
  await handle.ready;
  io.err(
    `ferry watch: ${agentOnly ? 'node agent' : `${handle.watches.length} watches`}${targets.length ? `, node agent on ${targets.map((t) => `${t.region}/${t.node ?? '?'}`).join(', ')}` : ''} (redis ${process.env.REDIS_URL ?? 'default'})`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  rt.log.info('shutting down');
  await handle.stop();
  await healthServer?.close();
  await rt.close();
  return 0;
}
