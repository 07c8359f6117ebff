// `/release rollback <app> [to <env>] [version <v>]`: redeploy a recorded
// digest — the previous version deployed in each region, or the named one —
// with no build, all replicas at once per region (one batch of 100%), and say
// how long it took.
//
// It refuses while a release of the app holds the environment's lock: that
// release's own abort rolls it back, and two writers would fight over the
// same Deployments. Two rollbacks of one app+environment at once are refused
// too (in this process; the cluster-side apply is idempotent anyway).
import type { Actor, CommandReply, RollbackService } from '../../commands/handler.ts';
import type { RollbackCommand } from '../../commands/rollback.ts';
import type { FerryConfig } from '../config/schema.ts';
import { durationMs, formatDuration } from '../domain/duration.ts';
import { may } from '../domain/policy.ts';
import type { Announcer, ReleaseRepository } from '../domain/ports.ts';
import { echo, literal } from '../domain/text.ts';
import type { VersionRepository } from '../domain/version.ts';
import type { KubeClients } from './client.ts';
import { KubeRollout, type RolloutOptions } from './rollout.ts';

export interface KubeRollbackDeps {
  config: () => FerryConfig;
  versions: Pick<VersionRepository, 'get' | 'list' | 'deploys' | 'recordDeploy'>;
  releases?: Pick<ReleaseRepository, 'lockHolder'>;
  /** Where the outcome is posted (the app's releases channel) when the reply went out before the work ended. */
  announcer?: Announcer;
  clients: (region: string) => KubeClients;
  rollout?: Omit<RolloutOptions, 'io'>;
  /** Wait for the redeploy before replying (the reply then says how long it took). Default true. */
  wait?: boolean;
}

interface Target {
  region: string;
  version: string;
  image: string;
  digest: string;
}

const reply = (
  ok: boolean,
  text: string,
  visibility: 'ephemeral' | 'channel' = 'ephemeral',
): CommandReply => ({
  ok,
  text,
  visibility,
});

export class KubeRollbackService implements RollbackService {
  private readonly deps: KubeRollbackDeps;
  private readonly running = new Set<string>();
  /** The work of the last request, for callers (tests) that replied early. */
  last: Promise<CommandReply> | undefined;

  constructor(deps: KubeRollbackDeps) {
    this.deps = deps;
  }

  async request(cmd: RollbackCommand, actor: Actor): Promise<CommandReply> {
    const config = this.deps.config();
    const app = config.apps[cmd.app];
    if (!app) return reply(false, `Unknown app ${echo(cmd.app)}.`);
    const env = cmd.environment ?? app.defaultEnvironment;
    const envCfg = config.environments[env];
    if (!envCfg) return reply(false, `Unknown environment ${echo(env)}.`);
    const allowed = may(config, actor.userId, 'rollback', cmd.app, env);
    if (!allowed.ok) return reply(false, allowed.reason);
    const holder = await this.deps.releases?.lockHolder(cmd.app, env);
    if (holder)
      return reply(
        false,
        `Release ${holder} of ${cmd.app} is in flight in ${env}; abort it (\`/release abort ${holder}\`), which rolls it back, instead of a second writer.`,
      );
    const targets = await this.targets(cmd.app, env, envCfg.regions, cmd.version);
    if (!targets.ok) return reply(false, targets.reason);
    const key = `${cmd.app}/${env}`;
    if (this.running.has(key)) return reply(false, `A rollback of ${cmd.app} in ${env} is already running.`);
    this.running.add(key);
    const deadlineMs = durationMs(envCfg.plan.gate?.progressDeadline ?? '5m');
    const work = this.run(cmd.app, env, targets.targets, deadlineMs, actor).finally(() =>
      this.running.delete(key),
    );
    this.last = work;
    if (this.deps.wait ?? true) return work;
    const what = describe(targets.targets);
    void work.then((r) =>
      this.deps.announcer?.announce({ kind: 'message', channel: app.channels.releases, text: r.text }),
    );
    return reply(
      true,
      `Rolling ${cmd.app} in ${env} back to ${what}, all pods at once; I will post here when done.`,
      'channel',
    );
  }

  private async targets(
    app: string,
    env: string,
    regions: string[],
    version: string | undefined,
  ): Promise<{ ok: true; targets: Target[] } | { ok: false; reason: string }> {
    if (version) {
      const rec = await this.deps.versions.get(app, version);
      const img = rec?.images[env];
      if (!img) {
        const known = (await this.deps.versions.list(app)).filter((v) => v.images[env]).map((v) => v.version);
        return {
          ok: false,
          reason: `${app} ${version} has no recorded image for ${env}${known.length ? `; versions with one: ${known.join(', ')}` : ''}. Rollback redeploys recorded images only.`,
        };
      }
      return {
        ok: true,
        targets: regions.map((region) => ({ region, version, image: img.image, digest: img.digest })),
      };
    }
    const out: Target[] = [];
    const nothing: string[] = [];
    for (const region of regions) {
      const history = await this.deps.versions.deploys(app, env, region, 200);
      const current = history[0];
      const prev = current && history.find((d) => d.digest !== current.digest);
      if (!prev) {
        nothing.push(region);
        continue;
      }
      out.push({ region, version: prev.version, image: prev.image, digest: prev.digest });
    }
    if (out.length === 0)
      return {
        ok: false,
        reason: `Nothing to roll back to: no earlier version of ${app} was deployed in ${env} (${nothing.join(', ')}). Name one with \`version <v>\`.`,
      };
    return { ok: true, targets: out };
  }

  private async run(
    app: string,
    env: string,
    targets: Target[],
    deadlineMs: number,
    actor: Actor,
  ): Promise<CommandReply> {
    const id = `rollback-${Date.now().toString(36)}`;
    const t0 = Date.now();
    const results = await Promise.allSettled(
      targets.map(async (t) => {
        const r0 = Date.now();
        const rollout = new KubeRollout(
          this.deps.clients(t.region),
          this.deps.config(),
          { releaseId: id, app, environment: env, version: t.version, region: t.region, image: t },
          this.deps.rollout ?? {},
        );
        const { replicas } = await rollout.prepare();
        await rollout.applyBatch(replicas, 1);
        const gate = await rollout.gate(replicas, 0, Number.MAX_SAFE_INTEGER, deadlineMs);
        if (!gate.ok) throw new Error(gate.reason);
        await this.deps.versions.recordDeploy({
          app,
          environment: env,
          region: t.region,
          version: t.version,
          digest: t.digest,
          image: t.image,
          releaseId: id,
          at: Date.now(),
        });
        return { region: t.region, replicas, ms: Date.now() - r0 };
      }),
    );
    const total = formatDuration(Date.now() - t0);
    const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = results.flatMap((r, i) =>
      r.status === 'rejected' ? [`${targets[i]?.region}: ${literal((r.reason as Error).message)}`] : [],
    );
    const done = ok
      .map((r) => {
        const t = targets.find((x) => x.region === r.region);
        return `${r.region} → ${t?.version} (${r.replicas} pods, ${formatDuration(r.ms)})`;
      })
      .join(', ');
    if (failed.length)
      return reply(
        false,
        `Rollback of ${app} in ${env} by <@${actor.userId}> failed after ${total}: ${failed.join('; ')}${done ? `. Done: ${done}` : ''}.`,
        'channel',
      );
    return reply(true, `Rolled back ${app} in ${env} in ${total}, no build: ${done}.`, 'channel');
  }
}

function describe(targets: Target[]): string {
  const versions = [...new Set(targets.map((t) => t.version))];
  return versions.length === 1
    ? `${versions[0]} (${targets[0]?.digest.slice(0, 19)}…) in ${targets.map((t) => t.region).join(', ')}`
    : targets.map((t) => `${t.version} in ${t.region}`).join(', ');
}
