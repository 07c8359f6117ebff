// `/release sync <app> <version> [in <region>…]`: copies a version's images
// (every environment it was built for) to regional registries now, outside a
// release — e.g. ahead of a big rollout, or to refill a region after a
// registry was rebuilt. Regions default to what the sync rules say. Runs on
// the worker (jobs/sync-images.ts); returns data, the job writes the report.
import type { FerryConfig } from '../domain/config.ts';
import type { SyncOutcome, SyncRequest } from '../ports.ts';
import { syncImages } from '../registry/sync.ts';
import type { VersionStore } from '../store/versions.ts';
import { endpoint, repositoryOf, syncTargets } from './real.ts';

export async function syncVersion(
  config: FerryConfig,
  versions: Pick<VersionStore, 'get'>,
  req: SyncRequest,
): Promise<SyncOutcome> {
  const record = await versions.get(req.app, req.version);
  const envs = Object.keys(record?.images ?? {});
  if (!record || envs.length === 0) return { built: false, ok: false, targets: [] };
  const out: SyncOutcome['targets'] = [];
  let ok = true;
  for (const env of envs) {
    const img = record.images[env] as { image: string };
    const tag = img.image.slice(img.image.lastIndexOf(':') + 1);
    const regions = (
      req.regions.length
        ? req.regions
        : syncTargets(
            config,
            { app: req.app, environment: env, regions: config.environments[env]?.regions ?? [] },
            tag,
          )
    ).filter((r) => !config.regions[r]?.registry.pullThrough);
    if (regions.length === 0) continue;
    const report = await syncImages({
      source: endpoint('primary', config.primaryRegistry),
      targets: regions.map((r) =>
        endpoint(r, (config.regions[r] as FerryConfig['regions'][string]).registry),
      ),
      images: [{ repo: repositoryOf(req.app), tag }],
    });
    ok &&= report.ok;
    for (const t of report.targets) {
      out.push({
        tag,
        target: t.target,
        ok: t.ok,
        bytesCopied: t.bytesCopied,
        bytesPresent: t.bytesSkipped + t.bytesMounted,
        timeMs: t.timeMs,
        errors: t.errors,
      });
    }
  }
  return { built: true, ok, targets: out };
}
