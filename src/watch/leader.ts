// Leader election on a coordination.k8s.io/v1 Lease, so that of the watcher's
// replicas exactly one watches and the others stand by.
//
// The algorithm is client-go's leaderelection, on the Lease object itself:
//   - a candidate reads the Lease every `retryMs`; it takes it when nobody
//     holds it (holderIdentity empty, or no Lease yet) or when the holder's
//     lease has expired (renewTime + leaseDurationSeconds < now). Every write
//     is a replace carrying the resourceVersion it read (or a create), so of
//     two candidates racing for the same Lease the API server lets one win and
//     answers 409 Conflict to the other.
//   - the leader renews (renewTime = now) every `renewMs`. When it has not
//     managed to renew for `renewDeadlineMs` (shorter than the lease duration)
//     it steps down on its own, before any candidate may consider the lease
//     expired: an old leader cut off from the API server stops watching before
//     a new one starts.
//   - on a graceful stop the leader stops its work first, then releases the
//     Lease (holderIdentity emptied), so a standby takes over at its next
//     retry instead of waiting for the lease to expire.
// Expiry compares renewTime, written by the holder's clock, with the
// candidate's clock: the replicas' clocks must agree to well under the lease
// duration (NTP on the nodes), as for every Lease-based election.
import { hostname } from 'node:os';
import { CoordinationV1Api, type KubeConfig, type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import type { FerryConfig } from '../domain/config.ts';
import {
  inClusterKubeConfig,
  isNotFound,
  kubeErrorMessage,
  loadKubeConfig,
  PooledKubeConfig,
  statusOf,
} from '../kube/client.ts';
import type { Logger } from '../logging.ts';

export interface LeaderElectorOptions {
  kc: KubeConfig;
  /** The Lease's name and namespace. */
  name: string;
  namespace: string;
  /** Who this replica is (holderIdentity); unique among the replicas. */
  identity: string;
  log: Logger;
  /** How long a lease holds without renewal. Default 10 s. */
  leaseDurationSeconds?: number;
  /** How often the leader renews. Default 2 s. */
  renewMs?: number;
  /** How long the leader keeps leading without a successful renewal. Default 70 % of the lease duration. */
  renewDeadlineMs?: number;
  /** How often a candidate tries to take the lease. Default 2 s. */
  retryMs?: number;
  /** Called when this replica becomes the leader. */
  onStartedLeading(): void | Promise<void>;
  /** Called when it stops leading (lost the lease, or stopping). */
  onStoppedLeading(): void | Promise<void>;
  /** After every round: who holds the Lease as this replica last saw it (logs, tests). */
  onRound?(holder: string): void;
  /** The clock (tests). */
  now?: () => number;
}

export type LeaderRole = 'leader' | 'standby';

/** A time in the past for a released Lease: its renewTime no longer keeps anyone out. */
const RELEASED_AT = 0;
/** The longest one read-and-write round may take. */
const ROUND_TIMEOUT_MS = 5000;

export class LeaderElector {
  private readonly o: LeaderElectorOptions;
  private readonly api: CoordinationV1Api;
  private readonly durationMs: number;
  private leading = false;
  private running = false;
  /** Local time of the renewTime of our last successful write. */
  private renewedAt = 0;
  private loopTimer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  /** Serialises onStartedLeading/onStoppedLeading so a stop never overtakes a start. */
  private transitions: Promise<void> = Promise.resolve();

  constructor(o: LeaderElectorOptions) {
    this.o = o;
    this.api = o.kc.makeApiClient(CoordinationV1Api);
    this.durationMs = (o.leaseDurationSeconds ?? 10) * 1000;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  get role(): LeaderRole {
    return this.leading ? 'leader' : 'standby';
  }

  get identity(): string {
    return this.o.identity;
  }

  private now(): number {
    return this.o.now ? this.o.now() : Date.now();
  }

  start(): this {
    if (this.running) return this;
    this.running = true;
    this.tick();
    return this;
  }

  /** Stops the election; when leading, stops the work and (unless `release` is false) releases the Lease. */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.running = false;
    clearTimeout(this.loopTimer);
    await this.inFlight;
    const wasLeader = this.leading;
    if (wasLeader) this.stepDown('stopping');
    await this.transitions;
    if (wasLeader && opts.release !== false) await this.release();
  }

  private tick(): void {
    if (!this.running) return;
    // A request that hangs must not stall the loop: the round gives up after
    // the timeout (the leader's deadline timer runs on regardless).
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer in ${ROUND_TIMEOUT_MS} ms`)), ROUND_TIMEOUT_MS);
    });
    this.inFlight = Promise.race([this.tryAcquireOrRenew(), timeout])
      .then((holder) => {
        if (holder !== undefined) this.o.onRound?.(holder);
      })
      .catch((err) => {
        this.o.log.warn({ lease: this.leaseRef(), err: kubeErrorMessage(err) }, 'leader election: API error');
      })
      .finally(() => {
        clearTimeout(timer);
        this.inFlight = undefined;
        if (this.running)
          this.loopTimer = setTimeout(() => this.tick(), this.leading ? this.renewMs() : this.retryMs());
      });
  }

  private renewMs(): number {
    return this.o.renewMs ?? 2000;
  }

  private retryMs(): number {
    return this.o.retryMs ?? 2000;
  }

  private renewDeadlineMs(): number {
    return this.o.renewDeadlineMs ?? Math.floor(this.durationMs * 0.7);
  }

  private leaseRef(): string {
    return `${this.o.namespace}/${this.o.name}`;
  }

  /** One round: take or renew the Lease if we may; returns who holds it after the round. */
  private async tryAcquireOrRenew(): Promise<string | undefined> {
    const now = this.now();
    const { name, namespace, identity } = this.o;
    let lease: V1Lease | undefined;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (!this.running) return undefined;
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: this.durationMs / 1000,
      renewTime: new V1MicroTime(now),
    };
    if (!lease) {
      const created = await this.write(() =>
        this.api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: { ...spec, acquireTime: new V1MicroTime(now), leaseTransitions: 0 },
          },
        }),
      );
      if (created) this.renewed(now, 'created the lease');
      return created ? identity : undefined;
    }
    const held = lease.spec ?? {};
    const holder = held.holderIdentity ?? '';
    if (holder === identity) {
      // Ours (a renewal; or we lost track of a write that did succeed).
      const renewed = await this.write(() =>
        this.api.replaceNamespacedLease({
          name,
          namespace,
          body: { ...lease, spec: { ...held, ...spec } },
        }),
      );
      if (renewed) this.renewed(now, 'acquired the lease');
      return renewed ? identity : undefined;
    }
    if (holder !== '' && !this.expired(lease, now)) {
      // Someone else leads (if we thought we did, we were too late to renew).
      this.stepDown(`${holder} holds the lease`);
      return holder;
    }
    const taken = await this.write(() =>
      this.api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          spec: {
            ...held,
            ...spec,
            acquireTime: new V1MicroTime(now),
            leaseTransitions: (held.leaseTransitions ?? 0) + (holder === '' ? 0 : 1),
          },
        },
      }),
    );
    if (taken) this.renewed(now, holder ? `took over the expired lease of ${holder}` : 'acquired the lease');
    return taken ? identity : undefined;
  }

  /** Whether the holder's lease has run out: renewTime + leaseDurationSeconds is past. */
  private expired(lease: V1Lease, now: number): boolean {
    const renew = lease.spec?.renewTime ?? lease.spec?.acquireTime;
    if (!renew) return true;
    const durationMs = (lease.spec?.leaseDurationSeconds ?? this.durationMs / 1000) * 1000;
    return new Date(renew).getTime() + durationMs < now;
  }

  /** A create/replace; false when another replica wrote first (409). */
  private async write(op: () => Promise<V1Lease>): Promise<boolean> {
    try {
      await op();
      return true;
    } catch (err) {
      if (statusOf(err) === 409) return false;
      throw err;
    }
  }

  private renewed(at: number, why: string): void {
    this.renewedAt = at;
    clearTimeout(this.deadlineTimer);
    // Measured from the renewTime we wrote, not from when the answer came back:
    // others count the lease's expiry from that renewTime too.
    const left = at + this.renewDeadlineMs() - this.now();
    this.deadlineTimer = setTimeout(() => {
      if (this.leading && this.renewedAt === at) this.stepDown('could not renew the lease in time');
    }, left);
    if (this.leading) return;
    this.leading = true;
    this.o.log.info(
      { lease: this.leaseRef(), identity: this.o.identity },
      `leader election: ${why}; leading`,
    );
    this.transitions = this.transitions
      .then(() => this.o.onStartedLeading())
      .catch((err) => this.failed(err));
  }

  private stepDown(why: string): void {
    clearTimeout(this.deadlineTimer);
    if (!this.leading) return;
    this.leading = false;
    // Losing the lease while running is worth a warning; stopping is not.
    this.o.log[this.running ? 'warn' : 'info'](
      { lease: this.leaseRef(), identity: this.o.identity },
      `leader election: ${why}; standing by`,
    );
    this.transitions = this.transitions
      .then(() => this.o.onStoppedLeading())
      .catch((err) => this.failed(err));
  }

  private failed(err: unknown): void {
    this.o.log.error({ err: (err as Error).message ?? String(err) }, 'leader election: callback failed');
  }

  /** Empties holderIdentity (if we still hold the lease), so a standby takes it at its next try. */
  private async release(): Promise<void> {
    const { name, namespace, identity } = this.o;
    try {
      const lease = await this.api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      await this.api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          spec: { ...lease.spec, holderIdentity: '', renewTime: new V1MicroTime(RELEASED_AT) },
        },
      });
      this.o.log.info({ lease: this.leaseRef(), identity }, 'leader election: released the lease');
    } catch (err) {
      // The lease then expires on its own, one lease duration later.
      this.o.log.warn(
        { lease: this.leaseRef(), err: kubeErrorMessage(err) },
        'leader election: release failed',
      );
    }
  }
}

/** This replica's identity: the pod's name (POD_NAME, from the downward API), else host and pid. */
export function leaderIdentity(env: NodeJS.ProcessEnv = process.env): string {
  return env.POD_NAME || `${hostname()}-${process.pid}`;
}

export interface LeaderSettings {
  name: string;
  namespace: string;
  /** A kubeconfig context, or 'in-cluster' for the pod's own service account. */
  context: string;
}

/**
 * Whether `ferry watch` elects a leader (FERRY_LEADER_ELECTION=1; off by
 * default, the local run has one watcher) and on which Lease:
 * FERRY_LEADER_LEASE (ferry-watcher) in FERRY_LEADER_NAMESPACE (ferry-system)
 * of FERRY_LEADER_CONTEXT (default: the first region's context).
 */
export function leaderSettingsFromEnv(
  config: FerryConfig,
  env: NodeJS.ProcessEnv = process.env,
): LeaderSettings | undefined {
  if (env.FERRY_LEADER_ELECTION !== '1') return undefined;
  const firstRegion = Object.values(config.regions)[0];
  const context = env.FERRY_LEADER_CONTEXT || firstRegion?.context;
  if (!context) throw new Error('leader election: no region in the config and no FERRY_LEADER_CONTEXT');
  return {
    name: env.FERRY_LEADER_LEASE || 'ferry-watcher',
    namespace: env.FERRY_LEADER_NAMESPACE || 'ferry-system',
    context,
  };
}

/** The kubeconfig for the Lease: the named context, or the pod's service account for 'in-cluster'. */
export function leaderKubeConfig(config: FerryConfig, context: string): KubeConfig {
  if (context === 'in-cluster') return inClusterKubeConfig();
  const region = Object.entries(config.regions).find(([, r]) => r.context === context)?.[0];
  if (region) return loadKubeConfig(config, region);
  const kc = new PooledKubeConfig();
  kc.loadFromDefault();
  if (!kc.getContextObject(context))
    throw new Error(`leader election: the kubeconfig has no context "${context}"`);
  kc.setCurrentContext(context);
  return kc;
}
