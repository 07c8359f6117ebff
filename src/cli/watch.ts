// `ferry watch`: OOM alerts. Watches pods and events of the managed apps in
// every region; with the node agent (`ferry watch node-agent`, `--node-agent`
// or FERRY_NODE_AGENT=1) it also reads memory-cgroup OOM counters on this
// node. In the local run (infra/infra.sh clusters on this machine) the agent
// runs inside `ferry watch` for every local node unless FERRY_NODE_AGENT=0.
//
//   ferry watch                  pods + events (+ local node agents when the clusters are local)
//   ferry watch node-agent       the node agent alone (the DaemonSet's command)
//
// With FERRY_LEADER_ELECTION=1 (the manifests' replicas) the pods and events
// are watched only while this replica holds the Lease (src/watch/leader.ts).

import { pullAheadStopReason } from '../domain/release.ts';
import { Health, healthFromEnv, kubeReadyForRegions, readinessUsesKube, redisReady } from '../health.ts';
import { metrics } from '../metrics.ts';
import { defaultPool } from '../registry/pool.ts';
import { PullRelay } from '../registry/pull-relay.ts';
import { releaseOfClusterId } from '../runners/deploy.ts';
import { endpoint } from '../runners/real.ts';
import { createRuntime, type Runtime } from '../runtime.ts';
import { LeaderElector, leaderIdentity, leaderKubeConfig, leaderSettingsFromEnv } from '../watch/leader.ts';
import { localTargets, targetsFromEnv } from '../watch/targets.ts';
import { startWatch, type WatchHandle } from '../watch/watcher.ts';
import type { CliIO, ProcessOptions } from './io.ts';

export async function run(opts: ProcessOptions, io: CliIO): Promise<number> {
  const agentOnly =
    opts.args.includes('node-agent') ||
    opts.args.includes('--node-agent') ||
    process.argv.includes('--node-agent');
  const rt = createRuntime({
    config: opts.configPath,
    name: agentOnly ? 'node-agent' : 'watch',
    watchConfig: process.env.FERRY_CONFIG_WATCH !== '0',
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
  const begin = (): WatchHandle =>
    startWatch({
      config: rt.config,
      redis: rt.store,
      ...(rt.prefix ? { prefix: rt.prefix } : {}),
      announcer: rt.announcer,
      releases: rt.releases,
      log: rt.log,
      watchApi: !agentOnly,
      nodeAgents: targets,
      // namespaces and regions added to the config are watched at once, removed ones no longer
      configChanges: (listener) => rt.live.onChange(listener),
      ...(process.env.FERRY_WATCH_RELIST_MS ? { relistMs: Number(process.env.FERRY_WATCH_RELIST_MS) } : {}),
      ...(process.env.FERRY_AGENT_POLL_MS ? { pollMs: Number(process.env.FERRY_AGENT_POLL_MS) } : {}),
    });
  const describe = (h: WatchHandle) =>
    `${agentOnly ? 'node agent' : `${h.watches.length} watches`}${targets.length ? `, node agent on ${targets.map((t) => `${t.region}/${t.node ?? '?'}`).join(', ')}` : ''} (redis ${process.env.REDIS_URL ?? 'default'})`;
  // With several replicas (deploy/ferry), only the holder of the Lease watches;
  // the node agent is per node and never elects.
  const election = agentOnly ? undefined : leaderSettingsFromEnv(config);
  let handle: WatchHandle | undefined;
  let elector: LeaderElector | undefined;
  if (election) {
    elector = new LeaderElector({
      kc: leaderKubeConfig(config, election.context),
      name: election.name,
      namespace: election.namespace,
      identity: leaderIdentity(),
      log: rt.log,
      onStartedLeading: () => {
        const h = begin();
        handle = h;
        // Not awaited: a slow first list must not hold up a step-down queued behind it.
        h.ready.then(
          () => io.err(`ferry watch: leading (lease ${election.namespace}/${election.name}): ${describe(h)}`),
          () => {},
        );
      },
      onStoppedLeading: async () => {
        const h = handle;
        handle = undefined;
        await h?.stop();
        io.err(`ferry watch: standing by (lease ${election.namespace}/${election.name})`);
      },
    }).start();
    io.err(
      `ferry watch: leader election on lease ${election.namespace}/${election.name} (${election.context}) as ${elector.identity}`,
    );
  }
  const relay = await startPullRelay(rt, [...new Set(targets.map((t) => t.region))], io);
  // The node agent reads cgroups and writes to Redis; the watcher also lists and watches the API servers.
  const health = new Health({
    ready: [redisReady(rt.store), ...(readinessUsesKube(!agentOnly) ? kubeReadyForRegions(config) : [])],
    // A standby is ready: it is healthy and takes over when the leader goes.
    ...(elector ? { role: () => `leader election: ${elector?.role}` } : {}),
  });
  const healthServer = await healthFromEnv(health, agentOnly ? 3104 : 3103, (m) =>
    io.err(`ferry watch: ${m}`),
  );
  if (healthServer) io.err(`ferry watch: /healthz /readyz /metrics on ${healthServer.url}`);
  if (!elector) {
    const h = begin();
    handle = h;
    await h.ready;
    io.err(`ferry watch: ${describe(h)}`);
  }
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  rt.log.info('shutting down');
  // The leader stops watching, then releases the Lease so a standby takes over at once.
  if (elector) await elector.stop();
  else await handle?.stop();
  await relay?.close();
  await healthServer?.close();
  await rt.close();
  return 0;
}

/**
 * The pre-pull relay of this node (src/registry/pull-relay.ts), when the
 * config throttles pre-pulls and this process is a node's agent. It serves
 * the regions whose nodes it watches; its budget follows the live config.
 */
export async function startPullRelay(
  rt: Runtime,
  regions: string[],
  io: CliIO,
): Promise<PullRelay | undefined> {
  const throttle = rt.config().prePull.throttle;
  if (!throttle || regions.length === 0) return undefined;
  const budget = () => {
    const t = rt.config().prePull.throttle ?? throttle;
    return (t.share * t.nodeBandwidthMbps * 1_000_000) / 8;
  };
  const relay = new PullRelay({
    port: throttle.relayPort,
    bytesPerSecond: budget,
    upstream: (region) => {
      const r = regions.includes(region) ? rt.config().regions[region] : undefined;
      return r ? defaultPool.client(endpoint(region, r.registry)) : undefined;
    },
    // The pull pods name the release as the cluster records it (src/runners/deploy.ts).
    stopReason: async (id) => pullAheadStopReason(await releaseOfClusterId(id, (r) => rt.releases.get(r))),
    log: rt.log,
    onBytes: (region, n) => metrics.prePullRelayBytes.inc({ region }, n),
  });
  let at: { host: string; port: number };
  try {
    at = await relay.start();
  } catch (err) {
    // The agent's alerts matter more than pulling ahead: without the relay, pulls ahead on this
    // node fail and each release pulls when it runs.
    io.err(
      `ferry watch: pre-pull relay not started on 127.0.0.1:${throttle.relayPort}: ${(err as Error).message}; releases on this node pull when they run`,
    );
    return undefined;
  }
  io.err(
    `ferry watch: pre-pull relay on ${at.host}:${at.port} for ${regions.join(', ')}, at most ${(budget() / 1_048_576).toFixed(1)} MiB/s per node`,
  );
  return relay;
}
