// `/release sync <app> <version> [in <region>…]`: copies a version's images
// (every environment it was built for) to regional registries now, outside a
// release — e.g. ahead of a big rollout, or to refill a region after a
// registry was rebuilt. Regions default to what the sync rules say.
import type { Actor, CommandReply, SyncService } from '../../commands/handler.ts';
import type { SyncCommand } from '../../commands/sync.ts';
import type { FerryConfig } from '../config/schema.ts';
import { formatDuration } from '../domain/duration.ts';
import { may } from '../domain/policy.ts';
import type { Announcer } from '../domain/ports.ts';
import { literal } from '../domain/text.ts';
import { syncImages } from '../registry/sync.ts';
import type { VersionStore } from '../store/versions.ts';
import { endpoint, repositoryOf, syncTargets } from './real.ts';

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

export class RegistrySyncService implements SyncService {
  private readonly config: () => FerryConfig;
  private readonly versions: Pick<VersionStore, 'get'>;
  private readonly announcer: Announcer;

  constructor(config: () => FerryConfig, versions: Pick<VersionStore, 'get'>, announcer: Announcer) {
    this.config = config;
    this.versions = versions;
    this.announcer = announcer;
  }

  async request(cmd: SyncCommand, actor: Actor): Promise<CommandReply> {
    const config = this.config();
    const record = await this.versions.get(cmd.app, cmd.version);
    const envs = Object.keys(record?.images ?? {});
    if (!record || envs.length === 0) {
      return {
        ok: false,
        visibility: 'ephemeral',
        text: `${cmd.app} ${cmd.version} has not been built yet, so there is nothing to sync. Release it first.`,
      };
    }
    for (const env of envs) {
      const allowed = may(config, actor.userId, 'sync', cmd.app, env);
      if (!allowed.ok) return { ok: false, visibility: 'ephemeral', text: allowed.reason };
    }
    const t0 = Date.now();
    const lines: string[] = [];
    let ok = true;
    for (const env of envs) {
      const img = record.images[env] as { image: string };
      const tag = img.image.slice(img.image.lastIndexOf(':') + 1);
      const regions = (
        cmd.regions.length
          ? cmd.regions
          : syncTargets(
              config,
              { app: cmd.app, environment: env, regions: config.environments[env]?.regions ?? [] },
              tag,
            )
      ).filter((r) => !config.regions[r]?.registry.pullThrough);
      if (regions.length === 0) continue;
      const report = await syncImages({
        source: endpoint('primary', config.primaryRegistry),
        targets: regions.map((r) =>
          endpoint(r, (config.regions[r] as FerryConfig['regions'][string]).registry),
        ),
        images: [{ repo: repositoryOf(cmd.app), tag }],
      });
      ok &&= report.ok;
      for (const t of report.targets) {
        lines.push(
          `${tag} → ${t.target}: ${t.ok ? `${mb(t.bytesCopied)} copied, ${mb(t.bytesSkipped + t.bytesMounted)} already there, ${formatDuration(t.timeMs)}` : `FAILED — ${literal(t.errors.join('; '))}`}`,
        );
      }
    }
    const summary = `Sync of ${cmd.app} ${cmd.version} requested by <@${actor.userId}> (${formatDuration(Date.now() - t0)}):\n${lines.join('\n') || 'no region to sync to'}`;
    const channel = config.apps[cmd.app]?.channels.releases;
    if (channel) await this.announcer.announce({ kind: 'message', channel, text: summary });
    return { ok, visibility: 'ephemeral', text: summary };
  }
}
