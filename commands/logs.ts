// /release logs <app> [to <env>] [in <region>] [pod <name>] [file <name>] [lines <n>] [since <duration>] [grep <text>]
import { z } from 'zod';
import { parseDuration } from '../src/domain/duration.ts';
import type { CommandSpec } from '../src/domain/grammar.ts';
import {
  checkApp,
  checkEnvironment,
  checkRegions,
  fail,
  isPodName,
  quote,
  readOptions,
} from '../src/domain/grammar.ts';
import { lookup } from '../src/domain/lookup.ts';
import { echo } from '../src/domain/text.ts';
import { ephemeral } from '../src/ports.ts';
import { type CommandModule, environmentOf } from './command.ts';

export const MAX_LOG_LINES = 5000;

export const logsSchema = z.strictObject({
  kind: z.literal('logs'),
  app: z.string(),
  environment: z.string().optional(),
  region: z.string().optional(),
  pod: z.string().refine(isPodName, 'a pod name').optional(),
  file: z.string().optional(),
  lines: z.number().int().min(1).max(MAX_LOG_LINES).optional(),
  since: z.string().optional(),
  grep: z.string().optional(),
});
export type LogsCommand = z.infer<typeof logsSchema>;

const USAGE =
  '/release logs <app> [to <env>] [in <region>] [pod <name>] [file <name>] [lines <n>] [since <duration>] [grep <text>]';
const KEYS = ['to', 'in', 'pod', 'file', 'lines', 'since', 'grep'] as const;

const grammar: CommandSpec<LogsCommand> = {
  name: 'logs',
  usage: USAGE,
  summary: 'Container output and log files (app, GC…) as a snippet in the thread and the whole as a file.',
  schema: logsSchema,
  parse(words, ctx) {
    const app = checkApp(words[0], ctx, USAGE);
    if (!app.ok) return app;
    // grep takes the rest of the line, so it can hold spaces without quotes.
    const opts = readOptions(words.slice(1), KEYS, USAGE, { greedyLast: 'grep' });
    if (!opts.ok) return opts;
    const v = opts.command.values;
    const command: LogsCommand = { kind: 'logs', app: app.command };
    if (v.has('to')) {
      const env = checkEnvironment(v.get('to'), ctx, USAGE);
      if (!env.ok) return env;
      command.environment = env.command;
    }
    if (v.has('in')) {
      const r = checkRegions(v.get('in'), ctx, USAGE);
      if (!r.ok) return r;
      if (r.command.length !== 1) return fail('usage', 'logs reads one region at a time.', USAGE);
      command.region = r.command[0] as string;
    }
    if (v.has('pod')) {
      const pod = v.get('pod') as string;
      // Checked here so that nothing but a pod name reaches the Kubernetes API (no paths, no ';').
      if (!isPodName(pod)) {
        return fail(
          'bad-value',
          `${echo(pod)} is not a pod name: pod names are lower-case letters, digits, '-' and '.'. Leave out \`pod\` to read the newest pod of ${app.command}.`,
          USAGE,
        );
      }
      command.pod = pod;
    }
    if (v.has('file')) {
      const file = (v.get('file') as string).toLowerCase();
      const a = lookup(ctx.config.apps, app.command);
      const offered = {
        ...(a ? lookup(ctx.config.stacks, a.stack)?.logFiles : {}),
        ...(a?.logFiles ?? {}),
      };
      const names = ['stdout', ...Object.keys(offered)];
      if (!names.includes(file)) {
        return fail(
          'bad-value',
          `${app.command} has no log file ${echo(file)}. Files: ${names.join(', ')}.`,
          USAGE,
        );
      }
      command.file = file;
    }
    if (v.has('lines')) {
      const n = Number(v.get('lines'));
      if (!Number.isInteger(n) || n < 1 || n > MAX_LOG_LINES) {
        return fail(
          'bad-value',
          `"lines" takes a whole number from 1 to ${MAX_LOG_LINES}, not ${echo(v.get('lines') as string)}.`,
          USAGE,
        );
      }
      command.lines = n;
    }
    if (v.has('since')) {
      const since = v.get('since') as string;
      if (parseDuration(since) === undefined) {
        return fail(
          'bad-value',
          `"since" takes a duration such as 30s, 15m or 2h, not ${echo(since)}.`,
          USAGE,
        );
      }
      command.since = since;
    }
    if (v.has('grep')) command.grep = v.get('grep') as string;
    return { ok: true, command };
  },
  format(c) {
    const parts = ['logs', c.app];
    if (c.environment) parts.push('to', c.environment);
    if (c.region) parts.push('in', c.region);
    if (c.pod) parts.push('pod', quote(c.pod));
    if (c.file) parts.push('file', c.file);
    if (c.lines !== undefined) parts.push('lines', String(c.lines));
    if (c.since) parts.push('since', c.since);
    if (c.grep !== undefined) parts.push('grep', c.grep);
    return parts.join(' ');
  },
};

export const logs: CommandModule<LogsCommand> = {
  ...grammar,
  permission: {
    kind: 'action',
    action: 'logs',
    targets: (c, ports) => {
      const environment = environmentOf(ports.config(), c.app, c.environment);
      return environment ? [{ app: c.app, environment }] : [];
    },
  },
  // One pod, capped in lines and bytes and read with a deadline: short enough for the bot.
  async handle(cmd, { actor, ports }) {
    if (!ports.logs) return ephemeral(false, 'Logs are not set up in this installation.');
    const { kind: _, ...request } = cmd;
    return ports.logs.read(request, actor);
  },
};
