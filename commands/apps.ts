// /release apps [<prefix>] — the apps whose names start with a prefix, a page
// at a time: with 9,000 apps the help cannot list them.
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { fail } from '../src/domain/grammar.ts';
import { appsWithPrefix } from '../src/domain/suggest.ts';
import { echo } from '../src/domain/text.ts';
import { ephemeral } from '../src/ports.ts';
import type { CommandModule } from './command.ts';

/** Names shown at most; the rest are counted. */
export const APPS_PAGE = 50;

export const appsSchema = z.strictObject({ kind: z.literal('apps'), prefix: z.string().optional() });
export type AppsCommand = z.infer<typeof appsSchema>;

const USAGE = '/release apps [<prefix>]';

const grammar: CommandSpec<AppsCommand> = {
  name: 'apps',
  usage: USAGE,
  summary: `The apps whose names start with a prefix (at most ${APPS_PAGE}, and how many more).`,
  schema: appsSchema,
  parse(words) {
    if (words.length > 1) return fail('usage', 'apps takes one prefix.', USAGE);
    const prefix = words[0]?.toLowerCase();
    if (prefix !== undefined && !/^[a-z0-9-]{1,63}$/.test(prefix))
      return fail('bad-value', `${echo(prefix)} cannot begin an app name (letters, digits, '-').`, USAGE);
    return { ok: true, command: { kind: 'apps', ...(prefix ? { prefix } : {}) } };
  },
  format: (c) => ['apps', ...(c.prefix ? [c.prefix] : [])].join(' '),
};

export const apps: CommandModule<AppsCommand> = {
  ...grammar,
  permission: { kind: 'anyone', why: 'it reads the config' },
  async handle(cmd, { ports }) {
    const { names, total } = appsWithPrefix(ports.config().apps, cmd.prefix ?? '', APPS_PAGE);
    const what = cmd.prefix ? `starting with "${cmd.prefix}"` : '';
    if (total === 0) return ephemeral(true, `No app ${what || 'is configured'}.`);
    const more = total - names.length;
    return ephemeral(
      true,
      `${total} app${total === 1 ? '' : 's'}${what ? ` ${what}` : ''}: ${names.join(', ')}${more ? ` and ${more} more; give a longer prefix.` : '.'}`,
    );
  },
};
