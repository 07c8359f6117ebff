// `ferry history <app> [to <env>]`, `ferry status [...]`, `ferry versions <app>`:
// the read-only chat commands from a shell, answered by the same handlers
// the bot uses, against the Redis in REDIS_URL.
import { handleText } from '../../commands/handle.ts';
import { plainText } from '../domain/text.ts';
import { createRuntime } from '../runtime.ts';
import type { CliIO, ProcessOptions } from './io.ts';

export function runner(subcommand: 'history' | 'status' | 'versions') {
  return async (opts: ProcessOptions, io: CliIO): Promise<number> => {
    const rt = createRuntime({
      config: opts.configPath,
      name: 'cli',
      ...(process.env.FERRY_PREFIX ? { prefix: process.env.FERRY_PREFIX } : {}),
    });
    try {
      const reply = await handleText(
        `${subcommand} ${opts.args.join(' ')}`,
        { userId: 'cli', channel: 'cli' },
        {
          config: rt.config,
          lifecycle: rt.lifecycle,
          releases: rt.releases,
          versions: rt.versions,
          announcer: rt.announcer,
        },
      );
      (reply.ok ? io.out : io.err)(plainText(reply.text.replace(/<@([A-Z0-9_]+)>/g, '@$1')));
      return reply.ok ? 0 : 1;
    } finally {
      await rt.close();
    }
  };
}
