// Runs the Slack emulator on its own for the local demo:
//   node dev/slack-emulator/main.ts
// Environment: SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, SLACK_APP_TOKEN (optional, Socket Mode),
// SLACK_EMULATOR_PORT (default 3333), SLACK_EMULATOR_HOST (default 127.0.0.1),
// SLACK_EVENTS_URL (the bot's request URL in HTTP mode, e.g. http://127.0.0.1:3000/slack/events).
// Prints SLACK_API_URL for the bot and the console address.

import { SlackEmulator } from './emulator.ts';
import type { SlackEmulatorOptions } from './options.ts';

const env = process.env;
const opts: SlackEmulatorOptions = {
  port: Number(env['SLACK_EMULATOR_PORT'] ?? 3333),
  host: env['SLACK_EMULATOR_HOST'] ?? '127.0.0.1',
  signingSecret: env['SLACK_SIGNING_SECRET'] ?? 'local-signing-secret',
  botToken: env['SLACK_BOT_TOKEN'] ?? 'xoxb-local-ferry',
};
if (env['SLACK_APP_TOKEN']) opts.appToken = env['SLACK_APP_TOKEN'];
if (env['SLACK_EVENTS_URL']) opts.botEventsUrl = env['SLACK_EVENTS_URL'];

const emu = await SlackEmulator.start(opts);
process.stdout.write(
  `${JSON.stringify({ msg: 'slack emulator listening', SLACK_API_URL: emu.apiUrl, console: emu.url, botEventsUrl: opts.botEventsUrl ?? null, socketMode: Boolean(opts.appToken) })}\n`,
);
const stop = (): void => {
  void emu.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
