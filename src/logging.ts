// Structured logs (pino): one JSON line per event, with the release id and
// job where there is one. LOG_LEVEL sets the level; FERRY_LOG_PRETTY is not
// needed — pipe to `pino-pretty` if you want colours. Every line goes through
// the one redactor (src/logs/redact.ts, built-in rules): messages and error
// texts often carry command output, URLs with credentials or tokens.
import { pino } from 'pino';
import { redactDeep } from './logs/redact.ts';

export type Logger = pino.Logger;

export function logger(name: string): Logger {
  return pino({
    name,
    level: process.env.LOG_LEVEL ?? 'info',
    base: { proc: name, pid: process.pid },
    hooks: {
      logMethod(args, method) {
        // Errors become plain objects first so their message and stack are redacted too.
        const plain = args.map((a) =>
          a instanceof Error ? { err: { type: a.name, message: a.message, stack: a.stack } } : a,
        );
        method.apply(this, redactDeep(plain) as Parameters<typeof method>);
      },
    },
  });
}
