// /release adopt <app> [to <env>] [confirm]
// Without `confirm` it only shows what would change (a dry run); with it,
// Ferry takes over the environment's existing Deployment without a restart.
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkApp, checkEnvironment, fail, readOptions } from '../src/domain/grammar.ts';
import { ephemeral } from '../src/ports.ts';
import { type CommandModule, environmentOf } from './command.ts';

export const adoptSchema = z.strictObject({
  kind: z.literal('adopt'),
  app: z.string(),
  environment: z.string().optional(),
  confirm: z.boolean(),
});
export type AdoptCommand = z.infer<typeof adoptSchema>;

const USAGE = '/release adopt <app> [to <env>] [confirm]';

const grammar: CommandSpec<AdoptCommand> = {
  name: 'adopt',
  usage: USAGE,
  summary:
    'Take over a Deployment Ferry did not create (kubectl, Helm, another platform) without restarting it; without "confirm", show what would change.',
  schema: adoptSchema,
  parse(words, ctx) {
    const app = checkApp(words[0], ctx, USAGE);
    if (!app.ok) return app;
    const opts = readOptions(words.slice(1), ['to'], USAGE, { allowRest: true });
    if (!opts.ok) return opts;
    const rest = opts.command.rest.map((w) => w.toLowerCase());
    const stray = rest.find((w) => w !== 'confirm');
    if (stray !== undefined || rest.length > 1)
      return fail(
        'usage',
        `I don't understand "${stray ?? 'confirm'}" here; only "confirm" may follow.`,
        USAGE,
      );
    const command: AdoptCommand = { kind: 'adopt', app: app.command, confirm: rest.length === 1 };
    const to = opts.command.values.get('to');
    if (to !== undefined) {
      const env = checkEnvironment(to, ctx, USAGE);
      if (!env.ok) return env;
      command.environment = env.command;
    }
    return { ok: true, command };
  },
  format: (c) =>
    ['adopt', c.app, ...(c.environment ? ['to', c.environment] : []), ...(c.confirm ? ['confirm'] : [])].join(
      ' ',
    ),
};

export const adopt: CommandModule<AdoptCommand> = {
  ...grammar,
  permission: {
    kind: 'action',
    action: 'adopt',
    targets: (c, ports) => {
      const environment = environmentOf(ports.config(), c.app, c.environment);
      return environment ? [{ app: c.app, environment }] : [];
    },
  },
  async handle(cmd, { actor, ports }) {
    return ports.adoptions
      ? ports.adoptions.request(cmd, actor)
      : ephemeral(false, 'Adoption is not set up in this installation.');
  },
};
