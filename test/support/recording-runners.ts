// Step runners that build, sync and deploy nothing: they record in Redis each
// time an effect is performed, and what it produced. The lifecycle and crash
// tests use them to count effects without a cluster, in-process (lifecycle.ts)
// or in a worker process of their own (recording-worker.ts). Every execution is counted — a step run twice
// shows 2 — so a test can assert exactly-once where Ferry promises it, and
// at-least-once plus idempotence (the same outcome every time) where a crash
// may repeat the step in flight, as README's "Exactly once, at least once"
// table says.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { BuiltImage, RegionRollout, StepIO, StepRunners } from '../../src/domain/ports.ts';
import type { Release } from '../../src/domain/release.ts';

export interface RecordingOptions {
  /** How long each step takes, so a test can kill the worker in the middle of it. */
  stepMs: number;
  replicas: number;
  /** Regions whose gate fails at this batch (1-based). */
  failGate?: Record<string, number>;
  /** How long the pull while a release waits (pre-pull) takes; default stepMs. A batch's pre-warm takes stepMs. */
  prepullMs?: number;
}

// Counts every performance of an effect and keeps the first outcome; an
// outcome that differs from the first is counted as divergent (the effect was
// not idempotent).
const RECORD = `
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
local first = redis.call('GET', KEYS[1])
if not first then
  redis.call('SET', KEYS[1], ARGV[1])
elseif first ~= ARGV[1] then
  redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
end
return 1`;

export class RecordingRunners implements StepRunners {
  private readonly redis: Redis;
  private readonly opts: RecordingOptions;
  private readonly prefix: string;

  constructor(redis: Redis, opts: RecordingOptions, prefix = 'ferry') {
    this.redis = redis;
    this.opts = opts;
    this.prefix = prefix;
  }

  private async effect(release: Release, name: string, value = '1'): Promise<void> {
    await this.redis.eval(
      RECORD,
      3,
      `${this.prefix}:effect:${release.id}:${name}`,
      `${this.prefix}:effects:${release.id}`,
      `${this.prefix}:effects-divergent:${release.id}`,
      value,
      name,
    );
  }

  /** How many times each effect of a release was performed (every execution). */
  static async counts(redis: Redis, releaseId: string, prefix = 'ferry'): Promise<Record<string, number>> {
    const raw = await redis.hgetall(`${prefix}:effects:${releaseId}`);
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
  }

  /** Effects whose repeated performance produced a different outcome than the first (not idempotent). */
  static async divergent(redis: Redis, releaseId: string, prefix = 'ferry'): Promise<Record<string, number>> {
    const raw = await redis.hgetall(`${prefix}:effects-divergent:${releaseId}`);
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
  }

  /** Waits as long as a real step would; a cancelled step stops waiting at once. */
  private async pause(signal: AbortSignal, ms = this.opts.stepMs): Promise<void> {
    await sleep(ms, undefined, { signal }).catch(() => {});
  }

  async build(release: Release, io: StepIO): Promise<BuiltImage> {
    await this.pause(io.signal);
    const digest = `sha256:${Buffer.from(`${release.app}-${release.version}-${release.environment}`).toString('hex').padEnd(64, '0').slice(0, 64)}`;
    await this.effect(release, 'build', digest);
    await io.say(`Built (recorded) ${release.app}:${release.version}-${release.environment}.`);
    return {
      image: `primary/${release.app}:${release.version}-${release.environment}`,
      digest,
      cached: false,
    };
  }

  async sync(release: Release, _image: BuiltImage, io: StepIO): Promise<void> {
    await this.pause(io.signal);
    for (const r of release.regions) await this.effect(release, `sync:${r}`);
    // As the real sync: its report once per release (the pull-ahead and the flow both sync).
    await io.say(`Synced (recorded) to ${release.regions.join(', ')}.`, { once: 'synced' });
  }

  async verify(release: Release, region: string, _image: BuiltImage, io: StepIO): Promise<{ ok: true }> {
    await this.pause(io.signal);
    await this.effect(release, `verify:${region}`);
    return { ok: true };
  }

  async rollout(release: Release, region: string, _image: BuiltImage, io: StepIO): Promise<RegionRollout> {
    const key = `${this.prefix}:pods:${release.app}:${release.environment}:${region}`;
    return {
      prepare: async () => ({
        replicas: this.opts.replicas,
        previousImage: (await this.redis.get(`${key}:previous`)) ?? null,
      }),
      applyBatch: async (pods, index) => {
        await this.pause(io.signal);
        await this.effect(release, `deploy:${region}:batch${index}`, String(pods));
        await this.redis.set(key, String(pods));
        return { ok: true };
      },
      gate: async (_pods, pauseMs) => {
        await this.pause(io.signal, Math.min(pauseMs, this.opts.stepMs));
        const failAt = this.opts.failGate?.[region];
        const applied = Object.keys(
          await RecordingRunners.counts(this.redis, release.id, this.prefix),
        ).filter((k) => k.startsWith(`deploy:${region}:batch`)).length;
        if (failAt !== undefined && applied >= failAt)
          return { ok: false, reason: 'new pods not Ready (recorded failure)' };
        return { ok: true };
      },
      prewarm: async (pods, opts) => {
        await this.effect(release, `${opts?.purpose ?? 'prewarm'}:${region}:${pods}`);
        await this.pause(
          io.signal,
          opts?.purpose === 'prepull' ? (this.opts.prepullMs ?? this.opts.stepMs) : this.opts.stepMs,
        );
        return Math.min(pods, opts?.nodesAtOnce ?? pods);
      },
      rollback: async () => {
        await this.effect(release, `rollback:${region}`);
        await this.redis.set(key, '0');
      },
    };
  }
}
