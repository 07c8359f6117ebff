// The Slack adapter's receiver: a @slack/bolt App that serves `/release` and
// the buttons and modals of Ferry's messages, over HTTP (POST /slack/events)
// or Socket Mode. It turns each into a chat-neutral ChatRequest (../port.ts)
// for the request handler (commands/requests.ts, passed in by the entry
// point) and shows the answer. Slack types stay in this folder; decisions
// (permissions, states) are the domain's.
//
// Every request is acked first and worked on after (Slack gives 3 s); the
// answer goes to the person alone (response_url / chat.postEphemeral).
// Each delivery carries its identity (trigger_id, action_ts, the view id) as
// the request's deliveryId, by which the handler acts on it once — never by
// dropping retries blindly, since the first delivery may never have arrived.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type AllMiddlewareArgs,
  App,
  type BlockAction,
  type ButtonAction,
  LogLevel,
  type RespondFn,
  type SlackActionMiddlewareArgs,
  type SlackCommandMiddlewareArgs,
} from '@slack/bolt';
import { WebClient } from '@slack/web-api';
import { limiter } from '../../concurrency.ts';
import type { Logger } from '../../logging.ts';
import { type RedactionPattern, redactText } from '../../logs/redact.ts';
import { isStoreUnreachable, STORE_UNREACHABLE } from '../../queue/connection.ts';
import type { Runtime } from '../../runtime.ts';
import { type Notifier, startRuntimeNotifier } from '../notifier.ts';
import { type ChatAnswer, type ChatReply, type ChatRequestHandler, RELEASE_ACTIONS } from '../port.ts';
import { type ChatClient, SlackDelivery } from './delivery.ts';
import { VerifyingReceiver } from './receiver.ts';
import { redactingClient } from './redacting-client.ts';
import { parseAlertLogsValue, parseButtonValue, renderEphemeral } from './render.ts';
import { REJECT_CALLBACK, REJECT_INPUT, rejectModal } from './views.ts';

export interface BotOptions {
  runtime: Runtime;
  /** SLACK_BOT_TOKEN */
  token: string;
  /** SLACK_SIGNING_SECRET (HTTP mode). */
  signingSecret: string;
  /** SLACK_APP_TOKEN: Socket Mode when set and socketMode is not false. */
  appToken?: string;
  socketMode?: boolean;
  /** SLACK_API_URL: another Web API base (the emulator). */
  apiUrl?: string;
  /** HTTP port (0 picks a free one). Default 3000. */
  port?: number;
  /**
   * Listen with SO_REUSEPORT: several bot processes of one network namespace (pods on the
   * host network of one node) share the port and the kernel spreads the connections.
   */
  reusePort?: boolean;
  /** Slash command name (default /release). */
  command?: string;
  /** Run the notify queue consumer in this process (default true). */
  notifier?: boolean;
  /** Answers requests (commands/requests.ts, wired by src/cli/bot.ts). */
  requests: ChatRequestHandler;
  logLevel?: LogLevel;
  /** Commands worked on at once after their ack (default 16). */
  workConcurrency?: number;
}

export interface RunningBot {
  app: App;
  /** HTTP mode: the Request URL for slash commands and interactivity. */
  url?: string;
  port?: number;
  notifier?: Notifier;
  stop(): Promise<void>;
}

type ButtonArgs = SlackActionMiddlewareArgs<BlockAction<ButtonAction>> & AllMiddlewareArgs;

export function createBotApp(opts: BotOptions): App {
  const rt = opts.runtime;
  const socketMode = opts.socketMode ?? Boolean(opts.appToken);
  const clientOptions = {
    ...(opts.apiUrl ? { slackApiUrl: opts.apiUrl } : {}),
    // Interactive calls (ephemerals, views.open) retry briefly; the notify queue does its own.
    retryConfig: { retries: 2, factor: 1.5, minTimeout: 200, maxTimeout: 1000 },
  };
  const common = {
    token: opts.token,
    // auth.test runs in startBot, where a Slack that does not answer yet is waited for, not a crash.
    deferInitialization: true,
    // Ferry keeps no conversation state; Bolt's default store throws (and catches) an Error for every
    // request it has none for, which was 3% of the bot's CPU under a burst of slash commands.
    convoStore: false as const,
    logLevel: opts.logLevel ?? LogLevel.WARN,
    clientOptions,
  };
  const app = socketMode
    ? new App({ ...common, appToken: opts.appToken, socketMode: true })
    : new App({
        ...common,
        // Ferry's receiver verifies every request (signature, and a timestamp within 5 minutes either
        // way) before Bolt sees it; see receiver.ts.
        receiver: new VerifyingReceiver({
          signingSecret: opts.signingSecret,
          logLevel: opts.logLevel ?? LogLevel.WARN,
          processBeforeResponse: false,
          onRefused: (reason, path) =>
            rt.log.child({ part: 'slack' }).warn({ reason, path }, 'request refused'),
          customRoutes: [
            {
              path: '/healthz',
              method: ['GET'],
              handler: (_req, res) => {
                res.writeHead(200, { 'content-type': 'text/plain' });
                res.end('ok');
              },
            },
          ],
        }),
      });

  const log = rt.log.child({ part: 'slack' });
  const afterAck = limiter(opts.workConcurrency ?? 16);
  // An answer the requests hand out again (help, per config) is rendered once.
  const rendered = new WeakMap<ChatReply, ReturnType<typeof renderEphemeral>>();
  const renderedAck = (reply: ChatReply) => {
    let r = rendered.get(reply);
    if (!r) {
      r = renderEphemeral(redactText(reply.text, rt.config().redaction), reply.ok);
      rendered.set(reply, r);
    }
    return r;
  };
  const { requests } = opts;

  // ---------------------------------------------------------------- /release
  const onCommand = async ({ ack, command, respond, client, context }: CommandArgs) => {
    const text = command.text.trim();
    const actor = { userId: command.user_id, channel: command.channel_id };
    // Only what the config alone answers (a command that does not parse, help, plan) is worked out
    // before the ack, because it is the ack; everything else is acked at once.
    const immediate = await requests.answerInAck?.(text, actor);
    if (immediate) {
      const r = renderedAck(immediate);
      await ack({ response_type: 'ephemeral', text: r.text, blocks: r.blocks });
      return;
    }
    await ack();
    // The work after the ack runs with bounded concurrency, so a burst of commands cannot starve the
    // acks of the requests behind it (Slack's 3 s); answers go to response_url, valid for 30 minutes.
    await afterAck(() => work(command, text, respond, client, context.retryNum));
  };
  app.command(opts.command ?? '/release', answeredEvenOnFailure(log, onCommand));

  async function work(
    command: { trigger_id: string; user_id: string; channel_id: string },
    text: string,
    respond: RespondFn,
    client: WebClient,
    retryNum: number | undefined,
  ): Promise<void> {
    const say = (t: string, ok: boolean, visibility: 'ephemeral' | 'channel' = 'ephemeral') =>
      answer(respond, client, command.channel_id, command.user_id, t, ok, visibility, rt.config().redaction);
    try {
      const a = await requests.handle({
        kind: 'command',
        text,
        actor: { userId: command.user_id, channel: command.channel_id },
        deliveryId: command.trigger_id,
      });
      if (a.kind === 'none') {
        log.info({ trigger: command.trigger_id, retry: retryNum }, 'repeated slash command ignored');
        return;
      }
      if (a.kind === 'reply') await say(a.reply.text, a.reply.ok, a.reply.visibility);
    } catch (err) {
      log.error({ err: (err as Error).message, text }, 'command failed');
      await say(isStoreUnreachable(err) ? STORE_UNREACHABLE : COMMAND_FAILED, false);
    }
  }

  // ---------------------------------------------------------------- card buttons
  for (const actionId of RELEASE_ACTIONS) {
    app.action<BlockAction<ButtonAction>>(actionId, async (args) => {
      await args.ack();
      try {
        const action = args.body.actions[0];
        const v = parseButtonValue(action?.value);
        if (!action || !v) return;
        const channel = args.body.channel?.id ?? args.body.container?.channel_id ?? '';
        const a = await requests.handle({
          kind: 'release-action',
          action: actionId,
          releaseId: v.id,
          ...(v.rev !== undefined ? { rev: v.rev } : {}),
          actor: { userId: args.body.user.id, channel },
          deliveryId: action.action_ts,
        });
        await show(args, a);
      } catch (err) {
        log.error({ err: (err as Error).message, actionId }, 'button failed');
        await tell(args, isStoreUnreachable(err) ? STORE_UNREACHABLE : ACTION_FAILED);
      }
    });
  }

  /** Shows the handler's answer to a click: an ephemeral reply, or the reject modal. */
  async function show(args: ButtonArgs, a: ChatAnswer): Promise<void> {
    if (a.kind === 'reply') await tell(args, a.reply.text, a.reply.ok);
    else if (a.kind === 'ask-reason') {
      const channel = args.body.channel?.id ?? args.body.container?.channel_id ?? '';
      await args.client.views.open({
        trigger_id: args.body.trigger_id,
        view: rejectModal(a.release, channel),
      });
    }
  }

  async function tell(args: ButtonArgs, text: string, ok = false): Promise<void> {
    const channel = args.body.channel?.id ?? args.body.container?.channel_id;
    // Error texts may carry command output: through the one redactor on the way out.
    const r = renderEphemeral(redactText(text, rt.config().redaction), ok);
    if (channel) {
      try {
        await args.client.chat.postEphemeral({
          channel,
          user: args.body.user.id,
          text: r.text,
          blocks: r.blocks,
        });
        return;
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'postEphemeral failed; using response_url');
      }
    }
    await args.respond({
      response_type: 'ephemeral',
      replace_original: false,
      text: r.text,
      blocks: r.blocks,
    });
  }

  // ---------------------------------------------------------------- the reject modal
  app.view(REJECT_CALLBACK, async ({ ack, view, body, client }) => {
    const reason = (view.state.values[REJECT_INPUT.block]?.[REJECT_INPUT.action]?.value ?? '').trim();
    if (reason.length < 3) {
      await ack({ response_action: 'errors', errors: { [REJECT_INPUT.block]: 'Say why, in a few words.' } });
      return;
    }
    await ack();
    let meta: { id?: string; channel?: string };
    try {
      meta = JSON.parse(view.private_metadata) as { id?: string; channel?: string };
    } catch {
      return;
    }
    if (!meta.id) return;
    let r: { ok: boolean; text: string } | undefined;
    try {
      const a = await requests.handle({
        kind: 'reject-reason',
        releaseId: meta.id,
        reason,
        actor: { userId: body.user.id, channel: meta.channel ?? '' },
        deliveryId: view.id,
      });
      if (a.kind === 'reply') r = a.reply;
    } catch (err) {
      log.error({ err: (err as Error).message }, 'reject failed');
      r = {
        ok: false,
        text: isStoreUnreachable(err)
          ? STORE_UNREACHABLE
          : `Ferry could not do that: ${(err as Error).message}.`,
      };
    }
    if (r && !r.ok && meta.channel) {
      const e = renderEphemeral(redactText(r.text, rt.config().redaction), false);
      await client.chat
        .postEphemeral({ channel: meta.channel, user: body.user.id, text: e.text, blocks: e.blocks })
        .catch((err: Error) => log.warn({ err: err.message }, 'postEphemeral failed'));
    }
  });

  // ---------------------------------------------------------------- alerts
  app.action<BlockAction<ButtonAction>>('silence', async (args) => {
    await args.ack();
    try {
      const key = args.body.actions[0]?.value;
      if (!key) return;
      const channel = args.body.channel?.id ?? args.body.container?.channel_id ?? '';
      await show(
        args,
        await requests.handle({
          kind: 'silence',
          key,
          actor: { userId: args.body.user.id, channel },
          deliveryId: args.body.actions[0]?.action_ts ?? '',
        }),
      );
    } catch (err) {
      log.error({ err: (err as Error).message }, 'silence failed');
      await tell(
        args,
        isStoreUnreachable(err) ? STORE_UNREACHABLE : `Ferry could not do that: ${(err as Error).message}.`,
      );
    }
  });

  app.action<BlockAction<ButtonAction>>('alert-logs', async (args) => {
    await args.ack();
    try {
      const action = args.body.actions[0];
      const target = parseAlertLogsValue(action?.value);
      if (!action || !target) return;
      const channel = args.body.channel?.id ?? args.body.container?.channel_id ?? '';
      await show(
        args,
        await requests.handle({
          kind: 'alert-logs',
          target,
          actor: { userId: args.body.user.id, channel },
          deliveryId: action.action_ts,
        }),
      );
    } catch (err) {
      log.error({ err: (err as Error).message }, 'alert logs failed');
      await tell(args, isStoreUnreachable(err) ? STORE_UNREACHABLE : ACTION_FAILED);
    }
  });

  app.error(async (err) => {
    log.error({ err: err.message, code: (err as { code?: string }).code }, 'bolt error');
  });

  return app;
}

/** What a person reads when their command failed inside Ferry: no internals, no stack. */
export const COMMAND_FAILED =
  'Something went wrong inside Ferry; nothing was started. Try again in a minute.';

/** A click that failed inside Ferry: it may have been recorded before the failure, so the card is the truth. */
export const ACTION_FAILED =
  'Something went wrong inside Ferry. The card shows what was recorded; try again in a minute.';

type CommandArgs = SlackCommandMiddlewareArgs & AllMiddlewareArgs;

/**
 * Every slash command is acked and answered, even when something inside throws: Slack shows a
 * timeout for a command that is never acked, and the person would not know whether anything began.
 */
export function answeredEvenOnFailure(
  log: { error(obj: object, msg: string): void },
  listener: (args: CommandArgs) => Promise<void>,
): (args: CommandArgs) => Promise<void> {
  return async (args) => {
    let acked = false;
    const ack: CommandArgs['ack'] = async (response) => {
      acked = true;
      await args.ack(response);
    };
    try {
      await listener({ ...args, ack });
    } catch (err) {
      log.error({ err: (err as Error).message, text: args.command.text }, 'command failed');
      const r = renderEphemeral(COMMAND_FAILED, false);
      const reply = { response_type: 'ephemeral' as const, text: r.text, blocks: r.blocks };
      if (!acked) await args.ack(reply);
      else await args.respond(reply).catch(() => undefined);
    }
  };
}

/** The answer to a command: via response_url, or chat.postEphemeral when that fails (5 uses, 30 min). */
async function answer(
  respond: RespondFn,
  client: WebClient,
  channel: string,
  user: string,
  text: string,
  ok: boolean,
  visibility: 'ephemeral' | 'channel' = 'ephemeral',
  patterns: readonly RedactionPattern[] = [],
): Promise<void> {
  // Replies may carry stored failure reasons or command output: through the one redactor on the way out.
  const r = renderEphemeral(redactText(text, patterns), ok);
  try {
    await respond({
      response_type: visibility === 'channel' ? 'in_channel' : 'ephemeral',
      text: r.text,
      blocks: r.blocks,
    });
  } catch {
    await client.chat.postEphemeral({ channel, user, text: r.text, blocks: r.blocks });
  }
}

/** A WebClient for the notify queue: no retries and no waiting on 429 — the queue decides. */
export function notifierClient(token: string, apiUrl?: string): WebClient {
  return new WebClient(token, {
    ...(apiUrl ? { slackApiUrl: apiUrl } : {}),
    rejectRateLimitedCalls: true,
    retryConfig: { retries: 0 },
    logLevel: LogLevel.ERROR,
    timeout: 10_000,
  });
}

/** Starts the bot in this process: Bolt (HTTP or Socket Mode) and the notify queue consumer. */
/**
 * Bolt's start-up call (auth.test: who the bot is), retried while the Slack API does not answer — a
 * network still coming up, or Slack down — with the reason logged, instead of an unhandled
 * rejection that ends the process. A refused token is not retried: it will not get better.
 */
async function initWhenSlackAnswers(app: App, log: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await app.init();
      return;
    } catch (err) {
      const e = err as { code?: string; data?: { error?: string }; message?: string };
      if (e.code === 'slack_webapi_platform_error') throw err;
      const waitMs = Math.min(30_000, 1000 * 2 ** Math.min(attempt - 1, 5));
      log.warn({ attempt, waitMs, err: e.message }, 'the Slack API does not answer; trying again');
      await sleep(waitMs);
    }
  }
}

export async function startBot(opts: BotOptions): Promise<RunningBot> {
  const rt = opts.runtime;
  const app = createBotApp(opts);
  const socketMode = opts.socketMode ?? Boolean(opts.appToken);
  await initWhenSlackAnswers(app, rt.log.child({ part: 'slack' }));
  let url: string | undefined;
  let port: number | undefined;
  if (socketMode) await app.start();
  else {
    const server = (await app.start(
      opts.reusePort ? { port: opts.port ?? 3000, reusePort: true } : (opts.port ?? 3000),
    )) as Server;
    port = (server.address() as AddressInfo).port;
    url = `http://127.0.0.1:${port}/slack/events`;
  }
  const notifier =
    opts.notifier === false
      ? undefined
      : startRuntimeNotifier(
          rt,
          new SlackDelivery({
            config: rt.config,
            // The notifier is a background consumer: it waits out a Redis restart (the command path fails fast).
            releases: rt.backgroundReleases,
            store: rt.store,
            ...(rt.prefix ? { prefix: rt.prefix } : {}),
            client: redactingClient(
              notifierClient(opts.token, opts.apiUrl) as unknown as ChatClient,
              () => rt.config().redaction,
            ),
            log: rt.log.child({ part: 'notifier' }),
          }),
        );
  return {
    app,
    ...(url ? { url } : {}),
    ...(port !== undefined ? { port } : {}),
    ...(notifier ? { notifier } : {}),
    async stop() {
      await notifier?.close();
      await app.stop();
    },
  };
}
