// `ferry bot`: the chat side of Ferry. `--chat slack` (the default; or
// FERRY_CHAT) serves `/release`, buttons and modals (HTTP on PORT, default
// 3000, POST /slack/events; Socket Mode when SLACK_APP_TOKEN is set);
// `--chat matrix` reads `!release` commands and reactions from a Matrix
// homeserver; `--chat slack,matrix` serves both, and every release's card and
// thread appear on both (src/chat/mirror.ts). The notify queue's messages are
// sent from here.
//
// Slack: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_APP_TOKEN, SLACK_API_URL
// (optional: another Web API base, e.g. the emulator).
// Matrix: MATRIX_HOMESERVER_URL, MATRIX_USER (@ferry:example.org), and
// MATRIX_ACCESS_TOKEN or MATRIX_PASSWORD; MATRIX_CREATE_ROOMS=1 creates the
// config's rooms on the bot's own server when missing (the local flow).
// Both: REDIS_URL, FERRY_CONFIG.
//
// This is where the chat adapters meet the commands: the entry point wires
// the chat-neutral request handler (commands/requests.ts) into each platform's
// receiver, so nothing under src/chat imports commands/.
import { CommandRequests } from '../../commands/requests.ts';
import type { MatrixBotOptions, RunningMatrixBot } from '../chat/matrix/bot.ts';
import type { BotOptions, RunningBot } from '../chat/slack/app.ts';
import { appsWithoutPlace } from '../domain/config.ts';
import { Health, healthFromEnv, kubeReadyForRegions, readinessUsesKube, redisReady } from '../health.ts';
import { commandServices, createRuntime, type Runtime, type ServicePorts } from '../runtime.ts';
import { Silences } from '../watch/silence.ts';
import { noPlaceMessage, parseChatPlatforms, slackAndMatrix, slackDelivery } from './chat-platforms.ts';
import type { CliIO, ProcessOptions } from './io.ts';

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

type ChatServices = Parameters<typeof chatRequests>[1];

/** The Slack bot with Ferry's commands behind it. */
export async function startSlackBot(
  opts: Omit<BotOptions, 'requests'> & { services?: ChatServices },
): Promise<RunningBot> {
  const { services, ...rest } = opts;
  const { startBot } = await import('../chat/slack/app.ts');
  return startBot({ ...rest, requests: chatRequests(opts.runtime, services) });
}

/** The Matrix bot with Ferry's commands behind it. */
export async function startMatrixChatBot(
  opts: Omit<MatrixBotOptions, 'handler'> & { services?: ChatServices },
): Promise<RunningMatrixBot> {
  const { services, ...rest } = opts;
  const { startMatrixBot } = await import('../chat/matrix/bot.ts');
  return startMatrixBot({ ...rest, handler: chatRequests(opts.runtime, services, 'matrix') });
}

export async function run(opts: ProcessOptions, io: CliIO): Promise<number> {
  let platforms: ReturnType<typeof parseChatPlatforms>;
  try {
    platforms = parseChatPlatforms(opts.chat ?? process.env.FERRY_CHAT);
  } catch (err) {
    io.err(`ferry bot: ${(err as Error).message}`);
    return 2;
  }
  const slackOn = platforms.includes('slack');
  const matrixOn = platforms.includes('matrix');
  const token = process.env.SLACK_BOT_TOKEN;
  const signingSecret = process.env.SLACK_SIGNING_SECRET;
  const appToken = process.env.SLACK_APP_TOKEN || undefined;
  if (slackOn && (!token || (!signingSecret && !appToken))) {
    io.err(
      'ferry bot: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)',
    );
    return 2;
  }
  const homeserverUrl = process.env.MATRIX_HOMESERVER_URL;
  const matrixUser = process.env.MATRIX_USER;
  const matrixToken = process.env.MATRIX_ACCESS_TOKEN || undefined;
  const matrixPassword = process.env.MATRIX_PASSWORD || undefined;
  if (matrixOn && (!homeserverUrl || !matrixUser || (!matrixToken && !matrixPassword))) {
    io.err('ferry bot: set MATRIX_HOMESERVER_URL, MATRIX_USER and MATRIX_ACCESS_TOKEN (or MATRIX_PASSWORD)');
    return 2;
  }
  const rt = createRuntime({
    config: opts.configPath,
    name: 'bot',
    watchConfig: process.env.FERRY_CONFIG_WATCH !== '0',
    failFast: true,
    ...(process.env.FERRY_PREFIX ? { prefix: process.env.FERRY_PREFIX } : {}),
  });
  const homeless = appsWithoutPlace(rt.config(), platforms);
  if (homeless.length) {
    io.err(`ferry bot: ${noPlaceMessage(homeless, platforms)}`);
    await rt.close();
    return 2;
  }
  const services = await commandServices(rt);
  const extra = {
    operations: services.operations,
    rollbacks: services.rollbacks,
    logs: services.logs,
    adoptions: services.adoptions,
  };
  const apiUrl = process.env.SLACK_API_URL || undefined;
  let slack: RunningBot | undefined;
  let matrix: RunningMatrixBot | undefined;
  if (slackOn) {
    slack = await startSlackBot({
      runtime: rt,
      services: extra,
      token: token as string,
      signingSecret: signingSecret ?? '',
      ...(appToken ? { appToken } : {}),
      ...(apiUrl ? { apiUrl } : {}),
      port: Number(process.env.PORT ?? 3000),
      reusePort: process.env.FERRY_BOT_REUSE_PORT === '1',
      // With Matrix too, the one notify queue is consumed below with both deliveries.
      notifier: !matrixOn,
    });
  }
  if (matrixOn) {
    matrix = await startMatrixChatBot({
      runtime: rt,
      services: extra,
      homeserverUrl: homeserverUrl as string,
      userId: matrixUser as string,
      ...(matrixToken ? { accessToken: matrixToken } : {}),
      ...(matrixPassword ? { password: matrixPassword } : {}),
      createRooms: process.env.MATRIX_CREATE_ROOMS === '1',
      ...(slackOn
        ? { delivery: (m) => slackAndMatrix(rt, slackDelivery(rt, token as string, apiUrl), m) }
        : {}),
    });
  }
  // The bot's readiness is Redis only (FERRY_READY_KUBE=1 adds the API servers). A bot taken out of
  // its Service because one region's API server is down would refuse every command, approvals for the
  // other regions included; up, it takes them, and the few that read that cluster (logs, rollback,
  // adopt) say which API server did not answer. It also keeps the Kubernetes client unloaded until a
  // command needs it.
  const health = new Health({
    ready: [redisReady(rt.store), ...(readinessUsesKube(false) ? kubeReadyForRegions(rt.config()) : [])],
  });
  const healthServer = await healthFromEnv(health, 3101, (m) => io.err(`ferry bot: ${m}`));
  if (healthServer) io.err(`ferry bot: /healthz /readyz /metrics on ${healthServer.url}`);
  if (slack)
    io.err(
      slack.url
        ? `ferry bot: listening on ${slack.url} (HTTP mode)`
        : 'ferry bot: connected over Socket Mode',
    );
  if (matrix)
    io.err(
      `ferry bot: on Matrix as ${matrixUser} at ${homeserverUrl}, in ${matrix.rooms.size} room${matrix.rooms.size === 1 ? '' : 's'}`,
    );
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  rt.log.info('shutting down');
  await matrix?.stop();
  await slack?.stop();
  await healthServer?.close();
  await rt.close();
  return 0;
}
