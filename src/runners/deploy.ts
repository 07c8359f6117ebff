// The Kubernetes parts of the step runners: a region's rollout in exact
// batches (src/kube/rollout.ts) and the final verification, against the
// cluster named by each region's kubeconfig context.
import type { FerryConfig } from '../domain/config.ts';
import type { BuiltImage, RegionRollout, StepIO, StepRunners } from '../domain/ports.ts';
import type { Release } from '../domain/release.ts';
import { type KubeClients, type KubeOptions, kubeClients } from '../kube/client.ts';
import {
  appTarget,
  KubeRollout,
  type RolloutOptions,
  regionImageRef,
  verifyRegion,
} from '../kube/rollout.ts';

/**
 * The release's id as recorded on the cluster's Deployments. It carries the
 * request time too: release ids count per Redis, and a cluster outlives a
 * test's (or a staging) Redis, so a new r2 must never resume an old r2.
 */
export function clusterReleaseId(release: Pick<Release, 'id' | 'requestedAt'>): string {
  return `${release.id}.${release.requestedAt.toString(36)}`;
}

/** The stored release a cluster release id names, or undefined when there is none or it is another with the same id. */
export async function releaseOfClusterId(
  clusterId: string,
  get: (id: string) => Promise<Release | undefined>,
): Promise<Release | undefined> {
  const release = await get(clusterId.split('.')[0] ?? '');
  return release && clusterReleaseId(release) === clusterId ? release : undefined;
}

export interface KubeRunnerOptions extends KubeOptions, Omit<RolloutOptions, 'io'> {}

export type KubeRunners = Pick<StepRunners, 'rollout' | 'verify'> & {
  /** The API clients of a region (cached). */
  clients(region: string): KubeClients;
};

export function kubeRunners(
  config: FerryConfig | (() => FerryConfig),
  opts: KubeRunnerOptions = {},
): KubeRunners {
  const cfg = typeof config === 'function' ? config : () => config;
  const cache = new Map<string, KubeClients>();
  const clients = (region: string): KubeClients => {
    const config = cfg();
    // keyed by the context too: a reloaded config may point a region at another cluster
    const key = `${region}\0${config.regions[region]?.context ?? ''}`;
    let k = cache.get(key);
    if (!k) {
      k = kubeClients(config, region, opts);
      cache.set(key, k);
    }
    return k;
  };
  return {
    clients,
    async rollout(release: Release, region: string, image: BuiltImage, io: StepIO): Promise<RegionRollout> {
      return new KubeRollout(
        clients(region),
        cfg(),
        {
          releaseId: clusterReleaseId(release),
          app: release.app,
          environment: release.environment,
          version: release.version,
          region,
          image,
        },
        { ...opts, io },
      );
    },
    async verify(release: Release, region: string, image: BuiltImage) {
      const config = cfg();
      return verifyRegion(
        clients(region),
        appTarget(config, release.app, release.environment, region),
        regionImageRef(config, region, image),
        image.digest,
      );
    },
  };
}
