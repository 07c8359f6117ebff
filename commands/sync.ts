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

export const syncSchema = z.strictObject({
  kind: z.literal('sync'),
  app: z.string(),
  version: z.string().regex(VERSION_RE),
  regions: z.array(z.string()),
});
export type SyncCommand = z.infer<typeof syncSchema>;

const USAGE = '/release sync <app> <version> [in <region>[,<region>…]]';

export const sync: CommandSpec<SyncCommand> = {
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
