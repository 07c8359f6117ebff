// The `ferry` program. Each subcommand is small and delegates to the core;
// processes that run for long (bot, worker, watch, start) live in their own
// modules and are loaded only when asked for.
import { parseArgs } from 'node:util';
import { type Command, formatCommand, parseCommand } from '../../commands/index.ts';
import { defaultConfigPath, formatProblem, loadConfigFile } from '../config/load.ts';
import type { FerryConfig } from '../domain/config.ts';
import { lookup } from '../domain/lookup.ts';
import { explainPlan, planRelease } from '../domain/plan.ts';
import { plainText } from '../domain/text.ts';
import { type CliIO, type ProcessOptions, stdio } from './io.ts';

const USAGE = `usage: ferry <command> [options]

  config check [FILE]              validate a config (default: $FERRY_CONFIG or ferry.yaml)
  explain "<chat text>" [--json]   read a /release text as the bot does; for a release, print its plan
  history <app> [to <env>]         every transition of an app's releases, with who and when
  status [<app>|<release-id>]      releases in flight and in line
  versions <app>                   built versions, their digests and where they run
  bot | worker | watch | start     run Ferry's processes (see README)

options: --config FILE (or FERRY_CONFIG)
         --chat slack|matrix|slack,matrix   (bot, start) the chat platforms to serve`;

export type { CliIO, ProcessOptions } from './io.ts';

function loadOrReport(file: string, io: CliIO): FerryConfig | undefined {
  const result = loadConfigFile(file);
  if (result.ok) return result.config;
  io.err(`${file}: ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}`);
  for (const p of result.problems) io.err(formatProblem(p));
  return undefined;
}

export function configCheck(file: string, io: CliIO = stdio): number {
  const config = loadOrReport(file, io);
  if (!config) return 1;
  io.out(
    `${file}: ok — ${Object.keys(config.apps).length} apps, ${Object.keys(config.environments).length} environments, ${Object.keys(config.regions).length} regions, ${Object.keys(config.factors).length} factors`,
  );
  return 0;
}

export function explain(text: string, config: FerryConfig, json: boolean, io: CliIO = stdio): number {
  const parsed = parseCommand(text, { config });
  if (!parsed.ok) {
    if (json) io.out(JSON.stringify({ ok: false, error: parsed.error }, null, 2));
    else io.err(plainText(parsed.error.message));
    return 1;
  }
  const command: Command = parsed.command;
  if (command.kind !== 'release' && command.kind !== 'plan') {
    if (json) io.out(JSON.stringify({ ok: true, command }, null, 2));
    else io.out(`${formatCommand(command)}\n${JSON.stringify(command, null, 2)}`);
    return 0;
  }
  const planned = planRelease(command, config);
  if (!planned.ok) {
    if (json) io.out(JSON.stringify({ ok: false, error: planned.error }, null, 2));
    else io.err(plainText(planned.error.message));
    return 1;
  }
  if (json) io.out(JSON.stringify({ ok: true, command, plan: planned.plan }, null, 2));
  else for (const line of explainPlan(planned.plan)) io.out(plainText(line));
  return 0;
}

export async function main(argv: string[], io: CliIO = stdio): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        'no-infra': { type: 'boolean' },
        'node-agent': { type: 'boolean' },
        chat: { type: 'string' },
      },
    });
  } catch (err) {
    io.err(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [cmd, ...rest] = positionals;
  const configPath = (values.config as string | undefined) ?? defaultConfigPath();
  if (values.help || !cmd) {
    io.out(USAGE);
    return cmd ? 0 : 2;
  }
  switch (cmd) {
    case 'config': {
      if (rest[0] !== 'check') break;
      return configCheck(rest[1] ?? configPath, io);
    }
    case 'explain': {
      if (rest.length === 0) {
        io.err('usage: ferry explain "/release <app> <version> …" [--config FILE] [--json]');
        return 2;
      }
      const config = loadOrReport(configPath, io);
      if (!config) return 1;
      return explain(rest.join(' '), config, Boolean(values.json), io);
    }
    default: {
      const runner = await loadProcess(cmd);
      if (runner)
        return runner(
          {
            configPath,
            args: rest,
            noInfra: Boolean(values['no-infra']),
            ...(typeof values.chat === 'string' ? { chat: values.chat } : {}),
          },
          io,
        );
    }
  }
  io.err(`unknown command: ${[cmd, ...rest].join(' ')}\n${USAGE}`);
  return 2;
}

type Runner = (opts: ProcessOptions, io: CliIO) => Promise<number>;

async function loadProcess(name: string): Promise<Runner | undefined> {
  const modules: Record<string, () => Promise<{ run: Runner }>> = {
    worker: () => import('./worker.ts'),
    watch: () => import('./watch.ts'),
    bot: () => import('./bot.ts'),
    start: () => import('./start.ts'),
    history: async () => ({ run: (await import('./query.ts')).runner('history') }),
    status: async () => ({ run: (await import('./query.ts')).runner('status') }),
    versions: async () => ({ run: (await import('./query.ts')).runner('versions') }),
  };
  const load = lookup(modules, name);
  return load ? (await load()).run : undefined;
}
