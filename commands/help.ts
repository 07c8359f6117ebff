// /release help [<topic>]
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { fail } from '../src/domain/grammar.ts';
import { closest } from '../src/domain/suggest.ts';
import { echo, literal } from '../src/domain/text.ts';
import { SUBCOMMANDS } from '../src/domain/words.ts';
import { ephemeral } from '../src/ports.ts';
import type { CommandModule } from './command.ts';

export const HELP_TOPICS = ['release', ...SUBCOMMANDS.filter((s) => s !== 'help'), 'factors'] as const;

export const helpSchema = z.strictObject({ kind: z.literal('help'), topic: z.enum(HELP_TOPICS).optional() });
export type HelpCommand = z.infer<typeof helpSchema>;

const USAGE = '/release help [<topic>]';

/** Up to this many apps are named in the help; more are found with `/release apps <prefix>`. */
export const HELP_APPS = 10;

const grammar: CommandSpec<HelpCommand> = {
  name: 'help',
  usage: USAGE,
  summary: 'How to use /release, or one of its commands; `help factors` lists the factors.',
  schema: helpSchema,
  parse(words) {
    if (words.length === 0) return { ok: true, command: { kind: 'help' } };
    const topic = (words[0] as string).toLowerCase();
    if (words.length > 1 || !(HELP_TOPICS as readonly string[]).includes(topic)) {
      const near = closest(topic, HELP_TOPICS);
      return fail(
        'usage',
        `There is no help on ${echo(words.join(' '))}.${near.length ? ` Did you mean "${near[0]}"?` : ''} Topics: ${HELP_TOPICS.join(', ')}.`,
        USAGE,
        near,
      );
    }
    return { ok: true, command: { kind: 'help', topic: topic as HelpCommand['topic'] } };
  },
  format: (c) => ['help', ...(c.topic ? [c.topic] : [])].join(' '),
};

export const help: CommandModule<HelpCommand> = {
  ...grammar,
  permission: { kind: 'anyone', why: 'it reads the command list and the config' },
  async handle(cmd, { ports, specs }) {
    const config = ports.config();
    if (cmd.topic === 'factors') {
      return ephemeral(
        true,
        Object.entries(config.factors)
          .map(
            ([name, f]) =>
              `*${name}* — ${f.description}${f.excludes.length ? ` (not with ${f.excludes.join(', ')})` : ''}`,
          )
          .join('\n'),
      );
    }
    if (cmd.topic) {
      const spec = specs.find((c) => c.name === cmd.topic);
      if (spec) return ephemeral(true, `\`${literal(spec.usage)}\`\n${spec.summary}`);
    }
    // A summary: every command once, and the apps only by count when there are many (9,000 would not fit).
    const apps = Object.keys(config.apps);
    const appLine =
      apps.length <= HELP_APPS
        ? `Apps: ${apps.join(', ')}.`
        : `${apps.length} apps: \`/release apps <prefix>\` finds them.`;
    return ephemeral(
      true,
      [
        '*Ferry* plans, approves, builds, syncs and rolls out releases. Commands:',
        ...specs.map((c) => `\`${literal(c.usage)}\` — ${c.summary}`),
        `${appLine} Factors: ${Object.keys(config.factors).join(', ')} (\`/release help factors\`).`,
      ].join('\n'),
    );
  },
};
