// /release <app> <version> [to <env>] [in <region>[,<region>…]] [<factor>…]
import { z } from 'zod';
import type { CommandSpec, GrammarContext, Parsed } from '../src/domain/grammar.ts';
import {
  checkApp,
  checkEnvironment,
  checkRegions,
  checkVersion,
  fail,
  quote,
  VERSION_RE,
} from '../src/domain/grammar.ts';
import { defines } from '../src/domain/lookup.ts';
import { closest } from '../src/domain/suggest.ts';
import { echo } from '../src/domain/text.ts';
import { ephemeral } from '../src/ports.ts';
import type { CommandModule } from './command.ts';

export const releaseSchema = z.strictObject({
  kind: z.literal('release'),
  app: z.string().min(1),
  version: z.string().regex(VERSION_RE),
  environment: z.string().optional(),
  regions: z.array(z.string()),
  factors: z.array(z.string()),
});
export type ReleaseCommand = z.infer<typeof releaseSchema>;

export const RELEASE_USAGE = '/release <app> <version> [to <env>] [in <region>[,<region>…]] [<factor>…]';

/** Shared by `/release …` and `/release plan …`: the words after the subcommand. */
export function parseReleaseWords(
  words: string[],
  ctx: GrammarContext,
  usage: string,
): Parsed<Omit<ReleaseCommand, 'kind'>> {
  const app = checkApp(words[0], ctx, usage);
  if (!app.ok) return app;
  if (words[1] === undefined) {
    return fail(
      'usage',
      `Which version of ${app.command}? Add a version, e.g. \`/release ${app.command} v2\`.`,
      usage,
    );
  }
  const version = checkVersion(words[1], usage);
  if (!version.ok) return version;
  let environment: string | undefined;
  let regions: string[] = [];
  const factors: string[] = [];
  const rest = words.slice(2);
  for (let i = 0; i < rest.length; i++) {
    const word = (rest[i] as string).toLowerCase();
    if (word === 'to') {
      if (environment) return fail('usage', 'Only one environment per release ("to" is given twice).', usage);
      const env = checkEnvironment(rest[++i], ctx, usage);
      if (!env.ok) return env;
      environment = env.command;
    } else if (word === 'in') {
      if (regions.length)
        return fail(
          'usage',
          '"in" is given twice: list all regions after one "in", separated by commas.',
          usage,
        );
      // "in eu-west, us-east" arrives as several words ending in commas.
      let spec = rest[++i] ?? '';
      while (spec.endsWith(',') && rest[i + 1] !== undefined) spec += rest[++i];
      const r = checkRegions(spec, ctx, usage);
      if (!r.ok) return r;
      regions = r.command;
    } else if (defines(ctx.config.factors, word)) {
      if (!factors.includes(word)) factors.push(word);
    } else if (defines(ctx.config.environments, word)) {
      return fail('usage', `${echo(word)} is an environment: write "to ${word}".`, usage);
    } else if (defines(ctx.config.regions, word)) {
      return fail('usage', `${echo(word)} is a region: write "in ${word}".`, usage);
    } else {
      const known = Object.keys(ctx.config.factors);
      const near = closest(word, known);
      return fail(
        'unknown-factor',
        `${echo(word)} is not a factor I know.${near.length ? ` Did you mean "${near[0]}"?` : ''} Factors: ${known.join(', ')}.`,
        usage,
        near,
      );
    }
  }
  return {
    ok: true,
    command: {
      app: app.command,
      version: version.command,
      ...(environment ? { environment } : {}),
      regions,
      factors,
    },
  };
}

export function formatReleaseWords(c: Omit<ReleaseCommand, 'kind'>): string {
  const parts = [c.app, quote(c.version)];
  if (c.environment) parts.push('to', c.environment);
  if (c.regions.length) parts.push('in', c.regions.join(','));
  parts.push(...c.factors);
  return parts.join(' ');
}

const grammar: CommandSpec<ReleaseCommand> = {
  name: 'release',
  usage: RELEASE_USAGE,
  summary: 'Plan, approve, build, sync and roll out a version.',
  schema: releaseSchema,
  parse(words, ctx) {
    const r = parseReleaseWords(words, ctx, RELEASE_USAGE);
    return r.ok ? { ok: true, command: { kind: 'release', ...r.command } } : r;
  },
  format: (c) => formatReleaseWords(c),
};

export const release: CommandModule<ReleaseCommand> = {
  ...grammar,
  permission: { kind: 'release', rule: 'request' },
  async handle(cmd, { actor, ports }) {
    const r = await ports.lifecycle.request(cmd, actor.userId, actor.channel);
    return ephemeral(r.ok, r.text, r.releaseId);
  },
};
