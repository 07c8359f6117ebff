// Every chat command, derived from the modules of this folder, and the one
// function that reads chat text into a command: the bot, the CLI (`ferry
// explain`) and the tests all call `parseCommand`, so they can never disagree
// about what a text means.
//
// The words themselves are the domain's (src/domain/words.ts: config
// validation must refuse an app called "status", and src/ may not import
// commands/); `satisfies` below makes the compiler hold this registry and that
// list to the same words, so neither can gain or lose a command alone.
import type { CommandError, CommandSpec, GrammarContext, Parsed } from '../src/domain/grammar.ts';
import { fail, stripSlashCommand, tokenize, unknownCommandHint } from '../src/domain/grammar.ts';
import { defines } from '../src/domain/lookup.ts';
import { echo, literal } from '../src/domain/text.ts';
import type { Subcommand } from '../src/domain/words.ts';
import { abort } from './abort.ts';
import { adopt } from './adopt.ts';
import { approve } from './approve.ts';
import { apps } from './apps.ts';
import type { CommandModule } from './command.ts';
import { help } from './help.ts';
import { history } from './history.ts';
import { logs } from './logs.ts';
import { pause } from './pause.ts';
import { plan } from './plan.ts';
import { rebuild } from './rebuild.ts';
import { reject } from './reject.ts';
import { release } from './release.ts';
import { resume } from './resume.ts';
import { rollback } from './rollback.ts';
import { status } from './status.ts';
import { sync } from './sync.ts';
import { versions } from './versions.ts';

export type { AdoptCommand } from './adopt.ts';
export type { ApproveCommand } from './approve.ts';
export type { AppsCommand } from './apps.ts';
export type { HelpCommand } from './help.ts';
export type { HistoryCommand } from './history.ts';
export type { LogsCommand } from './logs.ts';
export type { PlanCommand } from './plan.ts';
export type { RebuildCommand } from './rebuild.ts';
export type { RejectCommand } from './reject.ts';
export type { ReleaseCommand } from './release.ts';
export type { RollbackCommand } from './rollback.ts';
export type { StatusCommand } from './status.ts';
export type { SyncCommand } from './sync.ts';
export type { VersionsCommand } from './versions.ts';

export const COMMANDS = {
  release,
  plan,
  status,
  history,
  rollback,
  logs,
  approve,
  reject,
  pause,
  resume,
  abort,
  sync,
  versions,
  adopt,
  rebuild,
  apps,
  help,
  // biome-ignore lint/suspicious/noExplicitAny: each module is checked against its own command type where it is defined
} as const satisfies Record<Subcommand | 'release', CommandModule<any>>;

type SpecOf<K extends keyof typeof COMMANDS> = (typeof COMMANDS)[K];
export type Command = {
  [K in keyof typeof COMMANDS]: SpecOf<K> extends CommandModule<infer T> ? T : never;
}[keyof typeof COMMANDS];

/** The commands in help order. */
export const COMMAND_LIST: readonly CommandModule<Command>[] = Object.values(
  COMMANDS,
) as CommandModule<Command>[];

/** The module of a command. */
export function commandModule(kind: CommandKind): CommandModule<Command> {
  return COMMANDS[kind] as CommandModule<Command>;
}
export type CommandKind = Command['kind'];

/** Reads the text of `/release …` (with or without the leading "/release"). Never throws. */
export function parseCommand(text: string, ctx: GrammarContext): Parsed<Command> {
  try {
    const words = tokenize(stripSlashCommand(text));
    const first = words[0]?.toLowerCase();
    if (first === undefined) {
      return fail(
        'empty',
        `Tell me what to release, e.g. \`/release ${Object.keys(ctx.config.apps)[0] ?? 'payments'} v2\`, or see \`/release help\`.`,
        release.usage,
      );
    }
    if (first !== 'release' && defines(COMMANDS, first)) {
      const spec = COMMANDS[first as Exclude<keyof typeof COMMANDS, 'release'>] as CommandSpec<Command>;
      return spec.parse(words.slice(1), ctx);
    }
    if (!defines(ctx.config.apps, first) && words.length <= 2) {
      // "/release stauts" is more likely a subcommand typo than an app.
      const near = unknownCommandHint(first, ctx);
      if (near.length && !near.some((n) => defines(ctx.config.apps, n))) {
        return fail(
          'unknown-command',
          `${echo(first)} is not a command. Did you mean "${near[0]}"? See \`/release help\`.`,
          undefined,
          near,
        );
      }
    }
    return release.parse(words, ctx);
  } catch {
    // The grammar is meant to be total; if it is not, the person still gets an answer.
    // Internals (an exception's message) are no answer for a person; the log is where they belong.
    return fail('usage', 'I could not read that command. See `/release help`.');
  }
}

/** Writes a command back as chat text. */
export function formatCommand(command: Command): string {
  const spec = COMMANDS[command.kind] as CommandSpec<Command>;
  return `/release ${spec.format(command)}`;
}

export function usageLines(): string[] {
  return COMMAND_LIST.map((c) => `\`${literal(c.usage)}\` — ${c.summary}`);
}

export type { CommandError };
