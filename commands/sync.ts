// /release sync <app> <version> [in <region>[,<region>…]]
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import {
  checkApp,
  checkRegions,
  checkVersion,
  quote,
  readOptions,
  VERSION_RE,
} from '../src/domain/grammar.ts';
import { ephemeral } from '../src/ports.ts';
import type { CommandModule } from './command.ts';

export const syncSchema = z.strictObject({
  kind: z.literal('sync'),
  app: z.string(),
  version: z.string().regex(VERSION_RE),
  regions: z.array(z.string()),
});
export type SyncCommand = z.infer<typeof syncSchema>;

const USAGE = '/release sync <app> <version> [in <region>[,<region>…]]';

const grammar: CommandSpec<SyncCommand> = {
  name: 'sync',
  usage: USAGE,
  summary: "Copy a version's images from the primary registry to regional registries now.",
  schema: syncSchema,
  parse(words, ctx) {
    const app = checkApp(words[0], ctx, USAGE);
    if (!app.ok) return app;
    const version = checkVersion(words[1], USAGE);
    if (!version.ok) return version;
    const opts = readOptions(words.slice(2), ['in'], USAGE);
    if (!opts.ok) return opts;
    let regions: string[] = [];
    if (opts.command.values.has('in')) {
      const r = checkRegions(opts.command.values.get('in'), ctx, USAGE);
      if (!r.ok) return r;
      regions = r.command;
    }
    return { ok: true, command: { kind: 'sync', app: app.command, version: version.command, regions } };
  },
  format: (c) =>
    ['sync', c.app, quote(c.version), ...(c.regions.length ? ['in', c.regions.join(',')] : [])].join(' '),
};

/** The environments a version was built for: its images, one per environment. */
async function builtFor(ports: import('./command.ts').CommandPorts, c: SyncCommand): Promise<string[]> {
  return Object.keys((await ports.versions.get(c.app, c.version))?.images ?? {});
}

export const sync: CommandModule<SyncCommand> = {
  ...grammar,
  permission: {
    kind: 'action',
    action: 'sync',
    targets: async (c, ports) =>
      (await builtFor(ports, c)).map((environment) => ({ app: c.app, environment })),
  },
  // The copy runs on the worker (jobs/sync-images.ts); the report goes to the app's releases channel.
  async handle(cmd, { actor, ports }) {
    if (!ports.operations) return ephemeral(false, 'Image sync is not set up in this installation.');
    const environments = await builtFor(ports, cmd);
    if (environments.length === 0)
      return ephemeral(
        false,
        `${cmd.app} ${cmd.version} has not been built yet, so there is nothing to sync. Release it first.`,
      );
    const id = await ports.operations.enqueue(
      {
        kind: 'sync',
        request: { app: cmd.app, version: cmd.version, regions: cmd.regions },
        actor,
        environments,
      },
      `sync.${cmd.app}.${cmd.version}`,
    );
    const channel = ports.config().apps[cmd.app]?.channels?.releases;
    return ephemeral(
      true,
      `Syncing ${cmd.app} ${cmd.version} (${id}); the report will be posted${channel ? ` in <#${channel}>` : ''}.`,
    );
  },
};
