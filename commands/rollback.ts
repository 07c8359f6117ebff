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
import { ephemeral } from '../src/ports.ts';
import { type CommandModule, environmentOf } from './command.ts';

export const rollbackSchema = z.strictObject({
  kind: z.literal('rollback'),
  app: z.string(),
  environment: z.string().optional(),
  version: z.string().regex(VERSION_RE).optional(),
});
export type RollbackCommand = z.infer<typeof rollbackSchema>;

const USAGE = '/release rollback <app> [to <env>] [version <version>]';

const grammar: CommandSpec<RollbackCommand> = {
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

export const rollback: CommandModule<RollbackCommand> = {
  ...grammar,
  permission: {
    kind: 'action',
    action: 'rollback',
    targets: (c, ports) => {
      const environment = environmentOf(ports.config(), c.app, c.environment);
      return environment ? [{ app: c.app, environment }] : [];
    },
  },
  // The redeploy runs on the worker (jobs/rollback-app.ts) under the app and environment's lock; the
  // bot checks what it can answer at once and says where the outcome will be posted.
  async handle(cmd, { actor, ports }) {
    if (!ports.operations || !ports.rollbacks)
      return ephemeral(false, 'Rollback is not set up in this installation.');
    const config = ports.config();
    const environment = environmentOf(config, cmd.app, cmd.environment);
    if (!environment || !config.environments[environment])
      return ephemeral(false, `Unknown environment ${environment ?? ''} for ${cmd.app}.`);
    const request = { app: cmd.app, environment, ...(cmd.version ? { version: cmd.version } : {}) };
    const refused = await ports.rollbacks.check(request);
    if (refused) return ephemeral(false, refused);
    const id = await ports.operations.enqueue(
      { kind: 'rollback', request, actor },
      `rollback.${cmd.app}.${environment}`,
    );
    const channel = config.apps[cmd.app]?.channels?.releases;
    return {
      ok: true,
      visibility: 'channel',
      text: `Rolling ${cmd.app} in ${environment} back${cmd.version ? ` to ${cmd.version}` : ' to the previous version'}, all pods at once (${id}); the outcome will be posted${channel ? ` in <#${channel}>` : ''}.`,
    };
  },
};
