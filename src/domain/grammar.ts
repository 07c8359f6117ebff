// The pieces every chat command's grammar is made of: words, keyword options,
// and errors that say what was wrong and what would be right. Parsing never
// throws: every input yields a command or a CommandError.
import type { FerryConfig } from './config.ts';
import { defines } from './lookup.ts';
import { closest, closestKey, closestOfBoth } from './suggest.ts';
import { echo, literal } from './text.ts';
import { RELEASE_ID, RESERVED_WORDS, SUBCOMMANDS } from './words.ts';

export interface CommandError {
  code:
    | 'empty'
    | 'usage'
    | 'unknown-app'
    | 'unknown-environment'
    | 'unknown-region'
    | 'unknown-factor'
    | 'reserved-word'
    | 'bad-value'
    | 'bad-release-id'
    | 'exclusive-factors'
    | 'unknown-command';
  message: string;
  usage?: string;
  suggestions?: string[];
}

export type Parsed<T> = { ok: true; command: T } | { ok: false; error: CommandError };

export function fail(
  code: CommandError['code'],
  message: string,
  usage?: string,
  suggestions?: string[],
): Parsed<never> {
  // Usage lines hold <app>, <version>…: literal text, not markup.
  const error: CommandError = { code, message: usage ? `${message}\nUsage: ${literal(usage)}` : message };
  if (usage) error.usage = usage;
  if (suggestions?.length) error.suggestions = suggestions;
  return { ok: false, error };
}

/** Splits chat text into words. Slack's curly quotes count as quotes; quoted text is one word. */
export function tokenize(text: string): string[] {
  const normal = text
    .replace(/[\u201c\u201d]/g, '"')
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/\u00a0/g, ' ');
  const words: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (let m = re.exec(normal); m; m = re.exec(normal)) {
    words.push(m[1] ?? m[2] ?? m[3] ?? '');
  }
  return words;
}

/** Drops a leading "/release" so the CLI and the bot read the same words. */
export function stripSlashCommand(text: string): string {
  return text.replace(/^\s*\/release\b/i, '').trim();
}

/** Quotes a word for `format` when it would not survive tokenize as one word. */
export function quote(word: string): string {
  if (word === '' || /[\s"'\u201c\u201d\u2018\u2019]/.test(word)) {
    return word.includes('"') ? `'${word}'` : `"${word}"`;
  }
  return word;
}

/** What Kubernetes takes as a pod name: a DNS-1123 subdomain of at most 253 characters. */
export function isPodName(name: string): boolean {
  return name.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name);
}

export const VERSION_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** What a command may look up in the config while parsing. */
export interface GrammarContext {
  config: FerryConfig;
}

export function checkApp(word: string | undefined, ctx: GrammarContext, usage: string): Parsed<string> {
  if (word === undefined || word === '') return fail('usage', 'Which app? The app name is missing.', usage);
  const name = word.toLowerCase();
  if (RESERVED_WORDS.has(name)) {
    return fail(
      'reserved-word',
      `${echo(name)} is a reserved word of /release and cannot be an app name.`,
      usage,
    );
  }
  if (!defines(ctx.config.apps, name)) {
    const near = closestKey(name, ctx.config.apps);
    return fail(
      'unknown-app',
      `There is no app called ${echo(name)}.${near.length ? ` Did you mean ${near.map((n) => `"${n}"`).join(' or ')}?` : ` Apps: ${appSample(ctx)}.`}`,
      usage,
      near,
    );
  }
  return { ok: true, command: name };
}

/** A few app names; with many, where to find the rest. */
function appSample(ctx: GrammarContext): string {
  const names = Object.keys(ctx.config.apps);
  const first = names.slice(0, 20).join(', ');
  return names.length > 20
    ? `${first}… (${names.length} in all; \`/release apps <prefix>\` finds them)`
    : first;
}

export function checkEnvironment(
  word: string | undefined,
  ctx: GrammarContext,
  usage: string,
): Parsed<string> {
  const envs = Object.keys(ctx.config.environments);
  if (!word) return fail('usage', `"to" needs an environment: ${envs.join(', ')}.`, usage);
  const name = word.toLowerCase();
  if (!defines(ctx.config.environments, name)) {
    const near = closest(name, envs);
    return fail(
      'unknown-environment',
      `There is no environment called ${echo(name)}.${near.length ? ` Did you mean "${near[0]}"?` : ''} Environments: ${envs.join(', ')}.`,
      usage,
      near,
    );
  }
  return { ok: true, command: name };
}

export function checkRegions(word: string | undefined, ctx: GrammarContext, usage: string): Parsed<string[]> {
  const regions = Object.keys(ctx.config.regions);
  if (!word)
    return fail('usage', `"in" needs one or more regions separated by commas: ${regions.join(', ')}.`, usage);
  const names = word
    .toLowerCase()
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  if (names.length === 0)
    return fail('usage', `"in" needs one or more regions: ${regions.join(', ')}.`, usage);
  for (const r of names) {
    if (!defines(ctx.config.regions, r)) {
      const near = closest(r, regions);
      return fail(
        'unknown-region',
        `There is no region called ${echo(r)}.${near.length ? ` Did you mean "${near[0]}"?` : ''} Regions: ${regions.join(', ')}.`,
        usage,
        near,
      );
    }
  }
  return { ok: true, command: [...new Set(names)] };
}

export function checkVersion(word: string | undefined, usage: string): Parsed<string> {
  if (word === undefined || word === '')
    return fail('usage', 'Which version? The version is missing.', usage);
  if (!VERSION_RE.test(word)) {
    return fail(
      'bad-value',
      `${echo(word)} is not a version: use a git tag or ref such as v2 or 1.4.0 (letters, digits, . _ -).`,
      usage,
    );
  }
  return { ok: true, command: word };
}

export function checkReleaseId(word: string | undefined, usage: string): Parsed<string> {
  if (!word) return fail('usage', 'Which release? The release id (like r42) is missing.', usage);
  const id = word.toLowerCase().replace(/^#/, '');
  if (!RELEASE_ID.test(id)) {
    return fail(
      'bad-release-id',
      `${echo(word)} is not a release id: ids look like r42 (see /release status).`,
      usage,
    );
  }
  return { ok: true, command: id };
}

/**
 * Reads `keyword value` pairs after the positional words. Keywords may come
 * in any order, once each; a word that is no keyword goes to `rest` (or is an
 * error when the command takes no free words).
 */
export function readOptions(
  words: string[],
  keywords: readonly string[],
  usage: string,
  opts: { greedyLast?: string; allowRest?: boolean } = {},
): Parsed<{ values: Map<string, string>; rest: string[] }> {
  const values = new Map<string, string>();
  const rest: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string;
    const key = word.toLowerCase();
    if (keywords.includes(key)) {
      if (values.has(key)) return fail('usage', `${echo(key)} is given twice.`, usage);
      if (key === opts.greedyLast) {
        const text = words.slice(i + 1).join(' ');
        if (!text) return fail('usage', `${echo(key)} needs a value.`, usage);
        values.set(key, text);
        break;
      }
      const value = words[i + 1];
      if (value === undefined || (keywords.includes(value.toLowerCase()) && value.toLowerCase() !== key)) {
        return fail('usage', `${echo(key)} needs a value.`, usage);
      }
      values.set(key, value);
      i++;
    } else if (opts.allowRest) {
      rest.push(word);
    } else {
      return fail('usage', `I don't understand ${echo(word)} here.`, usage);
    }
  }
  return { ok: true, command: { values, rest } };
}

/** An unknown first word: a typo of a subcommand, or of an app. */
export function unknownCommandHint(word: string, ctx: GrammarContext): string[] {
  return closestOfBoth(word, SUBCOMMANDS, ctx.config.apps);
}

/** One chat command's grammar: how it reads, how it is written back, and its schema. */
export interface CommandSpec<T extends { kind: string }> {
  /** The subcommand word ("release" for the bare form). */
  name: string;
  usage: string;
  summary: string;
  schema: { parse(value: unknown): T };
  /** Parses the words after the subcommand word. */
  parse(words: string[], ctx: GrammarContext): Parsed<T>;
  /** Writes the command back as the words after `/release`; parse(format(c)) gives c again. */
  format(command: T): string;
}
