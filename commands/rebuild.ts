// /release rebuild stack <stack> [to <env>] [plan]
//
// Lists every app whose image deployed in the environment is on an older
// digest of the stack than the stack's tag names now, and requests one
// ordinary release per app (its usual plan, approvals and promotion rule),
// rebuilt from the same commit onto the current stack. With `plan` it only
// lists them: nothing is requested.
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkEnvironment, fail } from '../src/domain/grammar.ts';
import { closest } from '../src/domain/suggest.ts';
import { ephemeral } from '../src/ports.ts';
import type { CommandModule } from './command.ts';

export const rebuildSchema = z.strictObject({
  kind: z.literal('rebuild'),
  stack: z.string().min(1),
  environment: z.string().optional(),
  dryRun: z.boolean(),
});
export type RebuildCommand = z.infer<typeof rebuildSchema>;

const USAGE = '/release rebuild stack <stack> [to <env>] [plan]';

const grammar: CommandSpec<RebuildCommand> = {
  name: 'rebuild',
  usage: USAGE,
  summary:
    'Rebuild every app deployed on an outdated digest of a stack and release it (`plan`: only list them).',
  schema: rebuildSchema,
  parse(words, ctx) {
    const stacks = Object.keys(ctx.config.stacks);
    const what = words[0]?.toLowerCase();
    if (what === undefined) return fail('usage', `Rebuild what? Name a stack: ${stacks.join(', ')}.`, USAGE);
    if (what !== 'stack') {
      // "/release rebuild shell": the person named the stack and left out the word.
      if (what in ctx.config.stacks) return fail('usage', `Write \`/release rebuild stack ${what}\`.`, USAGE);
      return fail('usage', `Only stacks can be rebuilt: \`/release rebuild stack <stack>\`.`, USAGE);
    }
    const name = words[1]?.toLowerCase();
    if (name === undefined) return fail('usage', `Which stack? Stacks: ${stacks.join(', ')}.`, USAGE);
    if (!(name in ctx.config.stacks)) {
      const near = closest(name, stacks);
      return fail(
        'bad-value',
        `There is no stack called "${name}".${near.length ? ` Did you mean "${near[0]}"?` : ''} Stacks: ${stacks.join(', ')}.`,
        USAGE,
        near,
      );
    }
    const command: RebuildCommand = { kind: 'rebuild', stack: name, dryRun: false };
    const rest = words.slice(2);
    for (let i = 0; i < rest.length; i++) {
      const word = (rest[i] as string).toLowerCase();
      if (word === 'to') {
        if (command.environment) return fail('usage', '"to" is given twice.', USAGE);
        const env = checkEnvironment(rest[++i], ctx, USAGE);
        if (!env.ok) return env;
        command.environment = env.command;
      } else if (word === 'plan') {
        command.dryRun = true;
      } else if (word in ctx.config.environments) {
        return fail('usage', `"${word}" is an environment: write "to ${word}".`, USAGE);
      } else {
        return fail('usage', `I don't understand "${rest[i]}" here.`, USAGE);
      }
    }
    return { ok: true, command };
  },
  format: (c) =>
    [
      'rebuild',
      'stack',
      c.stack,
      ...(c.environment ? ['to', c.environment] : []),
      ...(c.dryRun ? ['plan'] : []),
    ].join(' '),
};

export const rebuild: CommandModule<RebuildCommand> = {
  ...grammar,
  // One ordinary release per app, each requested through the lifecycle (which asks the policy).
  permission: { kind: 'release', rule: 'request' },
  async handle(cmd, { actor, ports }) {
    return ports.rebuilds
      ? ports.rebuilds.request(cmd, actor)
      : ephemeral(false, 'Stack rebuilds are not set up in this installation.');
  },
};
