// Image sync: copies images (tags, with every child of a multi-platform
// index) from the primary registry to several regional registries at once.
//
// - a blob a target repository already has is skipped (HEAD); one the target
//   holds in another repository is mounted, not sent;
// - each missing blob is read from the source ONCE per sync and teed into the
//   uploads of every target that needs it, at the pace of the slowest target;
// - blobs stream (never held whole in memory) and are verified against their
//   digest before any upload is committed;
// - manifests go last (children, then the tag), so a tag never points at a
//   partial image;
// - an aborted sync ends its uploads cleanly and remembers the sessions: the
//   retry continues each blob from the offset the registry holds;
// - one target failing (unreachable, refusing) fails that target alone.
//
// The phases live in sync-run.ts, the tee of one blob in blob-tee.ts, the
// clients and known blob holders kept between syncs in pool.ts.

import { NotFoundError, type RegistryClient, type RegistryEndpoint } from './client.ts';
import { RegistryError } from './errors.ts';
import { defaultPool } from './pool.ts';
import { MemoryResumeStore, type ResumeStore } from './resume.ts';
import { SyncRun } from './sync-run.ts';
import type { SyncOptions, SyncProgress, SyncReport } from './sync-types.ts';

export type { RegistryEndpoint } from './client.ts';
export { RegistryPool } from './pool.ts';
export { FileResumeStore, MemoryResumeStore, type ResumeStore } from './resume.ts';
export { type ResolvedImage, resolveImage } from './sync-run.ts';
export type {
  ImageResult,
  ImageToSync,
  SyncOptions,
  SyncProgress,
  SyncReport,
  TargetReport,
} from './sync-types.ts';

/** Upload sessions of interrupted syncs, for the retry, when the caller keeps none. */
const defaultResume = new MemoryResumeStore();

/** The process's client for an endpoint (tokens and challenges reused). */
export function clientFor(ep: RegistryEndpoint): RegistryClient {
  return defaultPool.client(ep);
}

/**
 * Copies `images` from `source` to every target. Never throws for a failing
 * target or image (see the report); rejects only when `signal` aborts.
 */
export function syncImages(opts: SyncOptions): Promise<SyncReport> {
  return new SyncRun(opts, opts.pool ?? defaultPool, opts.resume ?? defaultResume).run();
}

/** Whether `repo:tag` resolves in the registry (a pull-through cache fetches it from upstream on the way). */
export async function imageExists(
  endpoint: RegistryEndpoint,
  repo: string,
  tag: string,
  signal?: AbortSignal,
): Promise<boolean> {
  return (await clientFor(endpoint).headManifest(repo, tag, signal)) !== null;
}

export interface EnsureResult {
  /** Digest of the image in the origin (and now in the region). */
  digest: string;
  /** True when the region lacked the image (or had another digest under the tag) and it was copied. */
  copied: boolean;
  report?: SyncReport;
}

/**
 * Back-to-source for the deploy step: makes sure `region` serves `repo:tag`
 * with the origin's digest, copying it from `origin` when it does not.
 * Throws when the origin lacks the image or the copy fails.
 */
export async function ensureImage(opts: {
  origin: RegistryEndpoint;
  region: RegistryEndpoint;
  repo: string;
  tag: string;
  signal?: AbortSignal;
  onProgress?: (e: SyncProgress) => void;
  resume?: ResumeStore;
}): Promise<EnsureResult> {
  const origin = clientFor(opts.origin);
  const want = await origin.headManifest(opts.repo, opts.tag, opts.signal);
  if (!want) {
    throw new NotFoundError(
      `image ${opts.repo}:${opts.tag} is not in the origin registry ${opts.origin.name}; build and push it first`,
      { registry: opts.origin.name, status: 404 },
    );
  }
  const have = await clientFor(opts.region).headManifest(opts.repo, opts.tag, opts.signal);
  if (have?.digest === want.digest) return { digest: want.digest, copied: false };
  const report = await syncImages({
    source: opts.origin,
    targets: [opts.region],
    images: [{ repo: opts.repo, tag: opts.tag }],
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.resume ? { resume: opts.resume } : {}),
  });
  if (!report.ok) {
    const why = [...report.errors, ...report.targets.flatMap((t) => t.errors)].join('; ');
    throw new RegistryError(
      `could not copy ${opts.repo}:${opts.tag} from ${opts.origin.name} to ${opts.region.name}: ${why}`,
      { registry: opts.region.name },
    );
  }
  return { digest: want.digest, copied: true, report };
}
