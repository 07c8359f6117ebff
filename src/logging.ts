// Structured logs (pino): one JSON line per event, with the release id and
// job where there is one. LOG_LEVEL sets the level; FERRY_LOG_PRETTY is not
// needed — pipe to `pino-pretty` if you want colours.
import { pino } from 'pino';

export type Logger = pino.Logger;

export function logger(name: string): Logger {
  return pino({ name, level: process.env.LOG_LEVEL ?? 'info', base: { proc: name, pid: process.pid } });
}
