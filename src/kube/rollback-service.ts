// `/release rollback <app> [to <env>] [version <v>]`: redeploy a recorded
// digest — the previous version deployed in each region, or the named one —
// with no build, all replicas at once per region (one batch of 100%).
//
// The bot asks `check` whether it can start (no release holds the lock, there
// is something to roll back to) and queues the work; the worker's rollback job
// (jobs/rollback-app.ts) takes the app and environment's lock and calls `run`.
// Both return data; the command and the job write the text.
import type { FerryConfig } from '../domain/config.ts';
import { durationMs } from '../domain/duration.ts';
import type { ReleaseRepository } from '../domain/ports.ts';
import type { VersionRepository } from '../domain/version.ts';
import type { RollbackOutcome, RollbackPlanner, RollbackRequest, RollbackTarget } from '../ports.ts';

export type { RollbackOutcome, RollbackTarget };

import type { KubeClients } from './client.ts';
import { KubeRollout, type RolloutOptions } from './rollout.ts';

export interface KubeRollbackDeps {
  config: () => FerryConfig;
  versions: Pick<VersionRepository, 'get' | 'list' | 'deploys' | 'recordDeploy'>;
  releases?: Pick<ReleaseRepository, 'lockHolder' | 'get'>;
  clients: (region: string) => KubeClients;
  rollout?: Omit<RolloutOptions, 'io'>;
}

type Resolved = { ok: true; targets: RollbackTarget[] } | { ok: false; reason: string };

export class KubeRollbacks implements RollbackPlanner {
  private readonly deps: KubeRollbackDeps;

  constructor(deps: KubeRollbackDeps) {
    this.deps = deps;
  }

  /** Why the rollback cannot be queued, or undefined. */
  async check(req: RollbackRequest & { environment: string }): Promise<string | undefined> {
    const config = this.deps.config();
    if (!config.apps[req.app]) return `Unknown app ${req.app}.`;
    if (!config.environments[req.environment]) return `Unknown environment ${req.environment}.`;
    const holder = await this.deps.releases?.lockHolder(req.app, req.environment);
    // A release holding the lock rolls back with its own abort; an operation's lock is waited for.
    if (holder && (await this.deps.releases?.get(holder)))
      return `Release ${holder} of ${req.app} is in flight in ${req.environment}; abort it (\`/release abort ${holder}\`), which rolls it back, instead of a second writer.`;
    const targets = await this.targets(req);
    return targets.ok ? undefined : targets.reason;
  }

  /** How long a rollback of this environment may take (its gate's progress deadline). */
  deadlineMs(environment: string): number {
    return durationMs(this.deps.config().environments[environment]?.plan.gate?.progressDeadline ?? '5m');
  }

  async targets(req: RollbackRequest & { environment: string }): Promise<Resolved> {
    const { app, environment: env, version } = req;
    const regions = this.deps.config().environments[env]?.regions ?? [];
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
    const out: RollbackTarget[] = [];
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

  /** Redeploys every target region at once and records the deploys under `id`. */
  async run(
    id: string,
    app: string,
    env: string,
    targets: RollbackTarget[],
    deadlineMs: number,
  ): Promise<RollbackOutcome> {
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
        return { region: t.region, version: t.version, replicas, ms: Date.now() - r0 };
      }),
    );
    return {
      app,
      environment: env,
      ms: Date.now() - t0,
      done: results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])),
      failed: results.flatMap((r, i) =>
        r.status === 'rejected'
          ? [{ region: targets[i]?.region ?? '?', reason: (r.reason as Error).message }]
          : [],
      ),
    };
  }
}
