// /release rollback <app> [to <env>] [version <version>]
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import {
  checkApp,
  checkEnvironment,
  checkVersion,
  quote,
  readOptions,
  VERSION_RE,
} from '../src/domain/grammar.ts';

export const rollbackSchema = z.strictObject({
  kind: z.literal('rollback'),
  app: z.string(),
  environment: z.string().optional(),
  version: z.string().regex(VERSION_RE).optional(),
});
export type RollbackCommand = z.infer<typeof rollbackSchema>;

const USAGE = '/release rollback <app> [to <env>] [version <version>]';

export const rollback: CommandSpec<RollbackCommand> = {
  name: 'rollback',
  usage: USAGE,
  summary: 'Redeploy the previous (or a named) version from its recorded images, without a build.',
  schema: rollbackSchema,
  parse(words, ctx) {
    const app = checkApp(words[0], ctx, USAGE);
    if (!app.ok) return app;
    const opts = readOptions(words.slice(1), ['to', 'version'], USAGE);
    if (!opts.ok) return opts;
    const command: RollbackCommand = { kind: 'rollback', app: app.command };
    const to = opts.command.values.get('to');
    if (to !== undefined) {
      const env = checkEnvironment(to, ctx, USAGE);
      if (!env.ok) return env;
      command.environment = env.command;
    }
    const v = opts.command.values.get('version');
    if (v !== undefined) {
      const version = checkVersion(v, USAGE);
      if (!version.ok) return version;
      command.version = version.command;
    }
    return { ok: true, command };
  },
  format: (c) =>
    [
      'rollback',
      c.app,
      ...(c.environment ? ['to', c.environment] : []),
      ...(c.version ? ['version', quote(c.version)] : []),
    ].join(' '),
};
