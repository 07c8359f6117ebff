// /release help [<topic>]
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { fail } from '../src/domain/grammar.ts';
import { closest } from '../src/domain/suggest.ts';
import { echo } from '../src/domain/text.ts';
import { SUBCOMMANDS } from '../src/domain/words.ts';

export const HELP_TOPICS = ['release', ...SUBCOMMANDS.filter((s) => s !== 'help'), 'factors'] as const;

export const helpSchema = z.strictObject({ kind: z.literal('help'), topic: z.enum(HELP_TOPICS).optional() });
export type HelpCommand = z.infer<typeof helpSchema>;

const USAGE = '/release help [<topic>]';

export const help: CommandSpec<HelpCommand> = {
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
