// `/release rebuild stack <stack> [to <env>] [plan]`: after a stack is patched
// (a new image pushed under the same tag), every app deployed on an older
// digest of it is rebuilt from the same commit onto the new digest and
// released — one ordinary release per app, requested as the person who typed
// the command, through Lifecycle.request: the app's usual plan, approvals,
// promotion rule and lock.
//
// Concurrency: at most `limits.parallelRebuilds` of a batch's releases are in
// flight at once. The command requests the first ones itself; the rest wait in
// a "rebuild" job on the timers queue, which looks at the batch's releases
// every few seconds and requests the next as earlier ones end (succeed, fail,
// are rejected or expire). A release waiting for approval counts as in flight.
// The job carries the whole batch in its data, so a worker restart loses
// nothing; a job retried after a crash finds the releases it already requested
// (same app, environment and version, requested since the batch began)
// instead of requesting them twice.
import type { FerryConfig } from '../domain/config.ts';
import type { Lifecycle } from '../domain/lifecycle.ts';
import { mayRequest } from '../domain/policy.ts';
import type { ReleaseRepository } from '../domain/ports.ts';
import { TERMINAL } from '../domain/release.ts';
import { type Deployed, planStackRebuild, shortDigest } from '../domain/stacks.ts';
import type { PinnedImage, VersionRepository } from '../domain/version.ts';
import type { Actor, Reply as CommandReply, RebuildRequest as RebuildCommand, Rebuilder } from '../ports.ts';

export interface RebuildEntry {
  app: string;
  environment: string;
  version: string;
  releaseId?: string;
  /** Why the release was not requested (refused by policy, the promotion rule…). */
  refused?: string;
}

export interface RebuildBatch {
  id: string;
  stack: string;
  digest: string;
  userId: string;
  channel?: string;
  limit: number;
  createdAt: number;
  entries: RebuildEntry[];
}

export interface RebuildScheduler {
  /** Runs `continueRebuild` on the batch later, again and again until nothing waits. */
  scheduleRebuild(batch: RebuildBatch): Promise<void>;
}

export interface RebuildDeps {
  config: () => FerryConfig;
  lifecycle: Pick<Lifecycle, 'request'>;
  releases: Pick<ReleaseRepository, 'get' | 'byApp'>;
  versions: Pick<VersionRepository, 'get' | 'deploys' | 'pin'>;
  scheduler: RebuildScheduler;
  /** The digest a stack's tag names now, in the registry that serves it. */
  resolveStack(stack: string): Promise<PinnedImage>;
}

const short = (d: string | undefined) => (d ? shortDigest(d) : 'unknown');

/**
 * Requests the batch's next releases while fewer than its limit are in
 * flight. Returns the batch as updated and one line per request made.
 */
export async function continueRebuild(
  batch: RebuildBatch,
  deps: { lifecycle: Pick<Lifecycle, 'request'>; releases: Pick<ReleaseRepository, 'get' | 'byApp'> },
): Promise<{ batch: RebuildBatch; said: string[]; waiting: number }> {
  const entries = batch.entries.map((e) => ({ ...e }));
  let inFlight = 0;
  for (const e of entries) {
    if (!e.releaseId) continue;
    const r = await deps.releases.get(e.releaseId);
    if (r && !TERMINAL.has(r.state) && r.state !== 'failed') inFlight++;
  }
  const said: string[] = [];
  for (const e of entries) {
    if (inFlight >= batch.limit) break;
    if (e.releaseId || e.refused) continue;
    // Requested by an earlier run of this job that did not get to save it.
    const earlier = (await deps.releases.byApp(e.app, 50)).find(
      (r) =>
        r.version === e.version &&
        r.environment === e.environment &&
        r.requestedBy === batch.userId &&
        r.requestedAt >= batch.createdAt,
    );
    if (earlier) {
      e.releaseId = earlier.id;
      if (!TERMINAL.has(earlier.state) && earlier.state !== 'failed') inFlight++;
      continue;
    }
    const reply = await deps.lifecycle.request(
      { app: e.app, version: e.version, environment: e.environment, factors: [] },
      batch.userId,
      batch.channel,
    );
    if (reply.ok && reply.releaseId) {
      e.releaseId = reply.releaseId;
      inFlight++;
    } else {
      e.refused = reply.text;
    }
    said.push(reply.text);
  }
  const waiting = entries.filter((e) => !e.releaseId && !e.refused).length;
  return { batch: { ...batch, entries }, said, waiting };
}

export class StackRebuildService implements Rebuilder {
  private readonly deps: RebuildDeps;

  constructor(deps: RebuildDeps) {
    this.deps = deps;
  }

  /** What is deployed of each app of the stack in the environment (the app's default when none is named). */
  private async deployed(config: FerryConfig, cmd: RebuildCommand): Promise<Deployed[]> {
    const out: Deployed[] = [];
    for (const [app, appConfig] of Object.entries(config.apps)) {
      if (appConfig.stack !== cmd.stack) continue;
      const environment = cmd.environment ?? appConfig.defaultEnvironment;
      let newest: { version: string; at: number } | undefined;
      for (const region of config.environments[environment]?.regions ?? []) {
        const d = (await this.deps.versions.deploys(app, environment, region, 1))[0];
        if (d && (!newest || d.at > newest.at)) newest = d;
      }
      if (!newest) continue;
      const record = await this.deps.versions.get(app, newest.version);
      out.push({ app, environment, version: newest.version, ...(record ? { record } : {}) });
    }
    return out;
  }

  async request(cmd: RebuildCommand, actor: Actor): Promise<CommandReply> {
    const config = this.deps.config();
    const stack = config.stacks[cmd.stack];
    if (!stack) return reply(false, `There is no stack called "${cmd.stack}".`);
    let current: PinnedImage;
    try {
      current = await this.deps.resolveStack(cmd.stack);
    } catch (err) {
      return reply(false, `Cannot read which digest ${stack.image} names now: ${(err as Error).message}`);
    }
    const plan = planStackRebuild({
      stack: cmd.stack,
      stackImage: stack.image,
      digest: current.digest,
      deployed: await this.deployed(config, cmd),
    });
    const lines = [`Stack *${cmd.stack}* (\`${stack.image}\`) is now \`${current.digest}\`.`];
    if (plan.outdated.length) {
      lines.push(`On an older stack digest (${plan.outdated.length}):`);
      for (const i of plan.outdated)
        lines.push(
          `• ${i.app} ${i.version} in ${i.environment} (stack ${short(i.stackDigest)}) → ${i.app} ${i.newVersion}`,
        );
    }
    for (const d of plan.current)
      lines.push(`• ${d.app} ${d.version} in ${d.environment}: already on ${short(current.digest)}`);
    for (const s of plan.skipped)
      lines.push(`• ${s.app} ${s.version} in ${s.environment}: skipped — ${s.reason}`);
    if (plan.outdated.length === 0) {
      lines.push(
        plan.current.length + plan.skipped.length
          ? 'Nothing to rebuild.'
          : `No app of stack ${cmd.stack} is deployed${cmd.environment ? ` in ${cmd.environment}` : ''}; nothing to rebuild.`,
      );
      return reply(true, lines.join('\n'));
    }
    if (cmd.dryRun) {
      lines.push(
        `Nothing requested (plan). \`/release rebuild stack ${cmd.stack}${cmd.environment ? ` to ${cmd.environment}` : ''}\` requests these releases.`,
      );
      return reply(true, lines.join('\n'));
    }
    // All or nothing: a rebuild that releases some apps and not others would
    // leave the stack half patched without anyone having decided so.
    const refused = plan.outdated
      .map((i) => ({ i, d: mayRequest(config, actor.userId, i.app, i.environment, []) }))
      .filter((x) => !x.d.ok);
    if (refused.length) {
      lines.push(
        `You may not release ${refused.map((x) => `${x.i.app} to ${x.i.environment}`).join(', ')}, so nothing was requested. ${refused[0]?.d.ok === false ? refused[0].d.reason : ''}`,
      );
      return reply(false, lines.join('\n'));
    }
    for (const i of plan.outdated) {
      await this.deps.versions.pin(i.app, i.newVersion, {
        ref: i.ref,
        ...(i.commit ? { commit: i.commit } : {}),
        stack: { stackName: cmd.stack, name: current.name, digest: current.digest },
        rebuildOf: i.version,
      });
    }
    const limit = config.limits.parallelRebuilds;
    const batch: RebuildBatch = {
      id: `${cmd.stack}-${short(current.digest)}-${Date.now().toString(36)}`,
      stack: cmd.stack,
      digest: current.digest,
      userId: actor.userId,
      ...(actor.channel ? { channel: actor.channel } : {}),
      limit,
      createdAt: Date.now(),
      entries: plan.outdated.map((i) => ({ app: i.app, environment: i.environment, version: i.newVersion })),
    };
    const first = await continueRebuild(batch, this.deps);
    lines.push(...first.said);
    if (first.waiting > 0) {
      await this.deps.scheduler.scheduleRebuild(first.batch);
      lines.push(
        `${first.waiting} more wait: at most ${limit} rebuild releases run at once; each is requested as an earlier one ends.`,
      );
    }
    const ok = first.batch.entries.some((e) => e.releaseId);
    return reply(ok, lines.join('\n'));
  }
}

function reply(ok: boolean, text: string): CommandReply {
  return { ok, text, visibility: 'ephemeral' };
}
