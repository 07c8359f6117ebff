// `ferry bot`: the Slack side of Ferry. Serves `/release`, buttons and modals
// (HTTP on PORT, default 3000, POST /slack/events; Socket Mode when
// SLACK_APP_TOKEN is set) and sends the notify queue's messages to Slack.
// SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL (optional: another Web
// API base, e.g. the emulator), REDIS_URL, FERRY_CONFIG.
//
// This is where the Slack adapter meets the commands: the entry point wires
// the chat-neutral request handler (commands/requests.ts) into the receiver,
// so nothing under src/chat imports commands/.
import { CommandRequests } from '../../commands/requests.ts';
import { type BotOptions, type RunningBot, startBot } from '../chat/slack/app.ts';
import { Health, healthFromEnv, kubeReadyForRegions, readinessUsesKube, redisReady } from '../health.ts';
import { commandServices, createRuntime, type Runtime, type ServicePorts } from '../runtime.ts';
import { Silences } from '../watch/silence.ts';
import type { CliIO, ProcessOptions } from './main.ts';

/** The request handler of the chat adapters, on a runtime and (optionally) the cluster-side services. */
export function chatRequests(
  rt: Runtime,
  services: Partial<Omit<ServicePorts, 'config' | 'lifecycle' | 'releases' | 'versions' | 'announcer'>> = {},
  platform = 'slack',
): CommandRequests {
  const silences = new Silences(rt.store, rt.prefix ?? 'ferry');
  return new CommandRequests(
    {
      config: rt.config,
      lifecycle: rt.lifecycle,
      releases: rt.releases,
      versions: rt.versions,
      announcer: rt.announcer,
      ...services,
      once: (key, ttl) => rt.releases.once(key, ttl),
      silence: (key, ms, by) => silences.silence(key, ms, by),
    },
    platform,
  );
}

/** The Slack bot with Ferry's commands behind it. */
export function startSlackBot(
  opts: Omit<BotOptions, 'requests'> & { services?: Parameters<typeof chatRequests>[1] },
): Promise<RunningBot> {
  const { services, ...rest } = opts;
  return startBot({ ...rest, requests: chatRequests(opts.runtime, services) });
}

export async function run(opts: ProcessOptions, io: CliIO): Promise<number> {
  const token = process.env.SLACK_BOT_TOKEN;
  const signingSecret = process.env.SLACK_SIGNING_SECRET;
  const appToken = process.env.SLACK_APP_TOKEN || undefined;
  if (!token || (!signingSecret && !appToken)) {
    io.err(
      'ferry bot: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)',
    );
    return 2;
  }
  const rt = createRuntime({
    config: opts.configPath,
    name: 'bot',
    failFast: true,
    ...(process.env.FERRY_PREFIX ? { prefix: process.env.FERRY_PREFIX } : {}),
  });
  const services = await commandServices(rt);
  const bot = await startSlackBot({
    runtime: rt,
    services: {
      operations: services.operations,
      rollbacks: services.rollbacks,
      logs: services.logs,
      adoptions: services.adoptions,
    },
    token,
    signingSecret: signingSecret ?? '',
    ...(appToken ? { appToken } : {}),
    ...(process.env.SLACK_API_URL ? { apiUrl: process.env.SLACK_API_URL } : {}),
    port: Number(process.env.PORT ?? 3000),
  });
  // The bot answers rollback, logs and status from the clusters, so its readiness includes them.
  const health = new Health({
    ready: [redisReady(rt.store), ...(readinessUsesKube(true) ? kubeReadyForRegions(rt.config()) : [])],
  });
  const healthServer = await healthFromEnv(health, 3101, (m) => io.err(`ferry bot: ${m}`));
  if (healthServer) io.err(`ferry bot: /healthz /readyz /metrics on ${healthServer.url}`);
  io.err(
    bot.url ? `ferry bot: listening on ${bot.url} (HTTP mode)` : 'ferry bot: connected over Socket Mode',
  );
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  rt.log.info('shutting down');
  await bot.stop();
  await healthServer?.close();
  await rt.close();
  return 0;
}
