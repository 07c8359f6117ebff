// /release history <app> [to <env>]
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkApp, checkEnvironment, readOptions } from '../src/domain/grammar.ts';

export const historySchema = z.strictObject({
  kind: z.literal('history'),
  app: z.string(),
  environment: z.string().optional(),
});
export type HistoryCommand = z.infer<typeof historySchema>;

const USAGE = '/release history <app> [to <env>]';

export const history: CommandSpec<HistoryCommand> = {
  name: 'history',
  usage: USAGE,
  summary: "An app's releases and every transition, with who and when.",
  schema: historySchema,
  parse(words, ctx) {
    const app = checkApp(words[0], ctx, USAGE);
    if (!app.ok) return app;
    const opts = readOptions(words.slice(1), ['to'], USAGE);
    if (!opts.ok) return opts;
    const to = opts.command.values.get('to');
    if (to === undefined) return { ok: true, command: { kind: 'history', app: app.command } };
    const env = checkEnvironment(to, ctx, USAGE);
    return env.ok
      ? { ok: true, command: { kind: 'history', app: app.command, environment: env.command } }
      : env;
  },
  format: (c) => ['history', c.app, ...(c.environment ? ['to', c.environment] : [])].join(' '),
};
