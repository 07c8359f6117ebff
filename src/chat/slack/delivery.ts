// Slack's outbound client for the notify queue: renders each Outbound the
// domain announced as Block Kit and sends it with the Web API (post the card
// or edit it in place, reply in its thread, upload files, alerts edited with
// their count). The queue's mechanics (order, retries, rate limits) live in
// ../notifier.ts; this only sends one message and sorts Slack's errors.
//
// Slack decides nothing here: the WebClient neither retries nor waits out a
// 429 by itself (rejectRateLimitedCalls, retries 0); `classify` tells the
// queue whether to wait (429), back off (network, 5xx) or drop (a channel that
// does not exist, a bot not in the channel).
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { FerryConfig } from '../../domain/config.ts';
import type { Outbound } from '../../domain/ports.ts';
import type { Release } from '../../domain/release.ts';
import type { Logger } from '../../logging.ts';
import { replicated } from '../../queue/connection.ts';
import { Pacer, type Rate } from '../../queue/lanes.ts';
import { type ChatDelivery, type DeliveryFailure, type OnceStep, SendLater, Undeliverable } from '../port.ts';
import { type Block, type Rendered, renderAlert, renderCard, renderEphemeral, renderText } from './render.ts';

/** The part of the Slack Web API the notifier uses (the real WebClient satisfies it). */
export interface ChatClient {
  chat: {
    postMessage(args: Record<string, unknown>): Promise<{ ok?: boolean; ts?: string; channel?: string }>;
    update(args: Record<string, unknown>): Promise<{ ok?: boolean }>;
    postEphemeral(args: Record<string, unknown>): Promise<{ ok?: boolean }>;
  };
  filesUploadV2(args: Record<string, unknown>): Promise<unknown>;
}

export interface SlackDeliveryDeps {
  config: () => FerryConfig;
  releases: {
    get(id: string): Promise<Release | undefined>;
    patch(id: string, change: (r: Release) => Release): Promise<Release | undefined>;
  };
  /** Plain Redis connection for bookkeeping (card hashes, alert message ts). */
  store: Redis;
  prefix?: string;
  client: ChatClient;
  log: Logger;
  /** Slack's tiers (defaults: postMessage 1/s per channel; chat.update 50/min per workspace, burst 20). */
  rates?: { postMessage?: Rate; update?: Rate };
}

/** Slack's documented pace: chat.postMessage ~1/s per channel; chat.update is Tier 3 (50+/min). */
export const SLACK_RATES = {
  postMessage: { count: 1, perMs: 1000, burst: 1 },
  update: { count: 50, perMs: 60_000, burst: 20 },
} satisfies Record<string, Rate>;

/** How long a message may wait for its turn on a bucket while holding its queue slot (longer: SendLater). */
const HOLD_SLOT_MS = 1000;
/** A reservation whose message never came back (its bot stopped) is forgotten after this. */
const RESERVATION_TTL_MS = 10 * 60_000;

/**
 * Each message's reserved turn on a bucket, by the call's identity, so a message that went away until its
 * turn (SendLater) finds its turn still kept for it when it comes back, and nobody else's.
 */
class Reservations {
  private readonly turns = new Map<string, { bucket: string; at: number }>();

  /**
   * ms until the call `id` may go on `bucket`, reserving its turn if it has none. A call `ahead` (a new
   * release's card, an alert) takes the earliest turn still to come, and each waiting one moves a turn later.
   */
  claim(pacer: Pacer, bucket: string, id: string, ahead = false): number {
    const now = Date.now();
    let turn = this.turns.get(id);
    if (!turn) {
      // One more call on the bucket either way: the last turn is one interval further off.
      turn = { bucket, at: now + pacer.reserve(bucket) };
      if (ahead) {
        const waiting = [...this.turns.values()].filter((t) => t.bucket === bucket && t.at >= now);
        const earliest = Math.min(turn.at, ...waiting.map((t) => t.at));
        if (earliest < turn.at) {
          for (const t of waiting) if (t.at >= earliest) t.at += pacer.interval;
          turn.at = earliest;
        }
      }
      this.turns.set(id, turn);
      if (this.turns.size % 1024 === 0) this.prune(now);
    }
    return Math.max(turn.at - now, pacer.heldFor(bucket));
  }

  release(id: string): void {
    this.turns.delete(id);
  }

  private prune(now: number): void {
    for (const [id, t] of this.turns) if (t.at < now - RESERVATION_TTL_MS) this.turns.delete(id);
  }
}

/**
 * Marks a chat.postMessage as one that goes ahead of the others waiting in its channel: a new release's card
 * (what the person who asked is waiting for) and an alert's first post. Stripped before the call.
 */
export const AHEAD: unique symbol = Symbol('ahead of the channel');

const callId = (a: Record<string, unknown>) =>
  createHash('sha1')
    .update(JSON.stringify([a['channel'], a['ts'], a['thread_ts'], a['text']]))
    .digest('hex');

/**
 * The client, paced on Slack's tiers: chat.postMessage per channel, chat.update per workspace.
 * Each call reserves its turn on its bucket; one whose turn is over a second off is not waited for
 * here (SendLater: the queue frees its slot until then). Slots held by a thousand card edits waiting
 * on chat.update's 50 a minute were what kept new releases' cards from being posted (bench/scale.ts).
 * A 429 holds that bucket (only) for Retry-After, then the error goes up to the notify queue,
 * which retries the message in its lane: other channels go on.
 */
export function pacedClient(raw: ChatClient, rates: SlackDeliveryDeps['rates'] = {}): ChatClient {
  const postPace = new Pacer(rates.postMessage ?? SLACK_RATES.postMessage);
  const updatePace = new Pacer(rates.update ?? SLACK_RATES.update);
  const reservations = new Reservations();
  const paced = async <T>(
    pacer: Pacer,
    bucket: string,
    args: Record<string, unknown>,
    call: () => Promise<T>,
    ahead = false,
  ): Promise<T> => {
    const id = `${bucket} ${callId(args)}`;
    // Asked again after each wait: a call going ahead may have moved this one's turn later meanwhile.
    for (let ms = reservations.claim(pacer, bucket, id, ahead); ms > 0; ) {
      if (ms > HOLD_SLOT_MS) throw new SendLater(ms);
      await sleep(ms);
      ms = reservations.claim(pacer, bucket, id);
    }
    reservations.release(id);
    try {
      return await call();
    } catch (err) {
      const f = classify(err);
      if (f.kind === 'ratelimited') pacer.hold(bucket, Date.now() + f.retryAfterMs);
      throw err;
    }
  };
  return {
    chat: {
      postMessage: ({ [AHEAD]: ahead, ...a }: Record<string | symbol, unknown>) =>
        paced(postPace, String(a['channel']), a, () => raw.chat.postMessage(a), ahead === true),
      update: (a) => paced(updatePace, 'chat.update', a, () => raw.chat.update(a)),
      postEphemeral: (a) => raw.chat.postEphemeral(a),
    },
    filesUploadV2: (a) => raw.filesUploadV2(a),
  };
}

const TRANSIENT_PLATFORM = new Set([
  'ratelimited',
  'internal_error',
  'fatal_error',
  'service_unavailable',
  'request_timeout',
  'team_added_to_org',
]);
const BLOCK_ERRORS = new Set([
  'invalid_blocks',
  'invalid_blocks_format',
  'msg_too_long',
  'too_many_attachments',
]);

/** Sorts a Web API error into what the queue should do with it. */
export function classify(err: unknown): DeliveryFailure {
  if (err instanceof SendLater) return { kind: 'later', afterMs: err.afterMs };
  if (err instanceof Undeliverable) return { kind: 'permanent', detail: err.message };
  const e = err as {
    code?: string;
    retryAfter?: number;
    statusCode?: number;
    data?: { error?: string };
    message?: string;
  };
  switch (e.code) {
    case 'slack_webapi_rate_limited_error':
      return { kind: 'ratelimited', retryAfterMs: Math.max(1, e.retryAfter ?? 1) * 1000 };
    case 'slack_webapi_request_error':
      return { kind: 'transient', detail: e.message ?? 'request error' };
    case 'slack_webapi_http_error':
      return (e.statusCode ?? 500) >= 500 || e.statusCode === 408
        ? { kind: 'transient', detail: `HTTP ${e.statusCode}` }
        : { kind: 'permanent', detail: `HTTP ${e.statusCode}` };
    case 'slack_webapi_platform_error': {
      const code = e.data?.error ?? 'unknown';
      return TRANSIENT_PLATFORM.has(code)
        ? { kind: 'transient', detail: code }
        : { kind: 'permanent', detail: code };
    }
    default:
      // Network failures that did not even reach the client's error mapping.
      return { kind: 'transient', detail: e.message ?? String(err) };
  }
}

const hashOf = (r: Rendered) =>
  createHash('sha1')
    .update(JSON.stringify([r.text, r.blocks]))
    .digest('hex');

/** A file name that can be neither markup nor a path: letters, digits, '.', '_' and '-' (others become '_'). */
export function safeFileName(name: string): string {
  return name.replace(/[^\w.-]+/g, '_').slice(0, 120) || 'ferry.txt';
}

export class SlackDelivery implements ChatDelivery {
  private readonly deps: SlackDeliveryDeps;

  constructor(deps: SlackDeliveryDeps) {
    this.deps = { ...deps, client: pacedClient(deps.client, deps.rates) };
  }

  classify(err: unknown): DeliveryFailure {
    return classify(err);
  }

  private key(...parts: string[]): string {
    return [this.deps.prefix ?? 'ferry', 'slack', ...parts].join(':');
  }

  private async call<T>(what: string, fn: () => Promise<T>, fallback?: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const f = classify(err);
      if (f.kind !== 'permanent') throw err;
      if (fallback && BLOCK_ERRORS.has(f.detail)) {
        this.deps.log.warn({ what, error: f.detail }, 'Slack refused the blocks; sending plain text');
        return fallback();
      }
      throw new Undeliverable(`${what}: ${f.detail}`);
    }
  }

  private plainText(r: Rendered) {
    return { text: r.text.slice(0, 3000) };
  }

  private async upload(
    once: OnceStep,
    name: string,
    channel: string,
    threadTs: string | undefined,
    file: { name: string; text: string; bytes?: string },
  ): Promise<void> {
    await once(name, async () => {
      await this.call('files.uploadV2', () =>
        this.deps.client.filesUploadV2({
          channel_id: channel,
          ...(threadTs ? { thread_ts: threadTs } : {}),
          // Names hold pod names and the like: keep them plain file names, never markup.
          filename: safeFileName(file.name),
          title: safeFileName(file.name),
          // A binary file (chart) goes as bytes, its text as the description.
          ...(file.bytes
            ? { file: Buffer.from(file.bytes, 'base64'), alt_txt: file.text }
            : { content: file.text }),
        }),
      );
      return 'done';
    });
  }

  /** Posts the release's card (first time) or edits it in place; returns the thread. */
  private async ensureCard(
    once: OnceStep,
    releaseId: string,
    edit: boolean,
  ): Promise<{ channel: string; ts: string } | undefined> {
    const { client, store } = this.deps;
    const rel = await this.deps.releases.get(releaseId);
    if (!rel) {
      this.deps.log.warn({ releaseId }, 'card for an unknown release; dropped');
      return undefined;
    }
    if (rel.thread) {
      if (edit) {
        const rendered = renderCard(rel);
        const h = hashOf(rendered);
        const hk = this.key('card', rel.id);
        if ((await store.get(hk)) !== h) {
          await this.call(
            'chat.update',
            () =>
              client.chat.update({
                channel: rel.thread?.channel,
                ts: rel.thread?.ts,
                text: rendered.text,
                blocks: rendered.blocks,
              }),
            () =>
              client.chat.update({
                channel: rel.thread?.channel,
                ts: rel.thread?.ts,
                ...this.plainText(rendered),
              }),
          );
          await store.set(hk, h, 'EX', 7 * 86_400);
        }
      }
      return rel.thread;
    }
    const app = this.deps.config().apps[rel.app];
    // An app served only on Matrix (rooms, no channels) has no card on Slack.
    if (app && !app.channels) return undefined;
    const channel = app?.channels?.releases ?? rel.requestChannel;
    if (!channel) throw new Undeliverable(`no releases channel for ${rel.app}`);
    const ts = await once(`card:${rel.id}`, async () => {
      const rendered = renderCard(rel);
      const res = await this.call(
        'chat.postMessage',
        () =>
          client.chat.postMessage({
            [AHEAD]: true,
            channel,
            text: rendered.text,
            blocks: rendered.blocks,
            unfurl_links: false,
          }),
        () => client.chat.postMessage({ [AHEAD]: true, channel, ...this.plainText(rendered) }),
      );
      await store.set(this.key('card', rel.id), hashOf(rendered), 'EX', 7 * 86_400);
      return `${res.channel ?? channel} ${res.ts ?? ''}`;
    });
    const [ch, t] = ts.split(' ') as [string, string];
    const thread = { channel: ch, ts: t };
    await this.deps.releases.patch(rel.id, (r) => ({ ...r, thread }));
    // The card's ts and this job's record of the post reach a replica before anything else happens:
    // a failover that lost them would have the next message post a second card.
    await replicated(store);
    // The state may have moved while posting: bring the card up to date.
    const now = await this.deps.releases.get(rel.id);
    if (now && now.rev !== rel.rev + 1) {
      const rendered = renderCard(now);
      const h = hashOf(rendered);
      if ((await store.get(this.key('card', rel.id))) !== h) {
        await this.call('chat.update', () =>
          client.chat.update({ channel: ch, ts: t, text: rendered.text, blocks: rendered.blocks }),
        );
        await store.set(this.key('card', rel.id), h, 'EX', 7 * 86_400);
      }
    }
    return thread;
  }

  private async post(
    once: OnceStep,
    name: string,
    channel: string,
    threadTs: string | undefined,
    r: Rendered,
    fileName?: string,
  ): Promise<void> {
    await once(name, async () => {
      const base = { channel, ...(threadTs ? { thread_ts: threadTs } : {}), unfurl_links: false };
      const res = await this.call(
        'chat.postMessage',
        () => this.deps.client.chat.postMessage({ ...base, text: r.text, blocks: r.blocks }),
        () => this.deps.client.chat.postMessage({ ...base, ...this.plainText(r) }),
      );
      return res.ts ?? '';
    });
    if (r.file)
      await this.upload(once, `${name}:file`, channel, threadTs, {
        ...r.file,
        name: fileName ?? r.file.name,
      });
  }

  async deliver(m: Outbound, once: OnceStep): Promise<void> {
    const { client, store } = this.deps;
    switch (m.kind) {
      case 'card':
        await this.ensureCard(once, m.releaseId, true);
        return;
      case 'reply': {
        const thread = await this.ensureCard(once, m.releaseId, false);
        if (!thread) return;
        const r = renderText(m.text, {
          ...(m.snippet ? { snippet: m.snippet } : {}),
          ...(m.file ? { file: m.file } : {}),
          fileName: `${m.releaseId}.txt`,
        });
        await this.post(once, 'reply', thread.channel, thread.ts, r);
        return;
      }
      case 'message': {
        let threadTs: string | undefined;
        let channel = m.channel;
        if (m.threadOf) {
          const rel = await this.deps.releases.get(m.threadOf);
          if (rel?.thread) {
            threadTs = rel.thread.ts;
            channel = rel.thread.channel;
          }
        } else if (m.threadOfAlert) {
          // The alert's first post (kept for a day); gone: the message goes to the channel itself.
          const known = await store.get(this.key('alert', m.threadOfAlert));
          if (known) [channel, threadTs] = known.split(' ') as [string, string];
        }
        const r = renderText(m.text, {
          ...(m.snippet ? { snippet: m.snippet } : {}),
          ...(m.file ? { file: m.file } : {}),
        });
        await this.post(once, 'message', channel, threadTs, r);
        return;
      }
      case 'ephemeral': {
        const r = renderEphemeral(m.text);
        await once('ephemeral', async () => {
          await this.call(
            'chat.postEphemeral',
            () =>
              client.chat.postEphemeral({ channel: m.channel, user: m.user, text: r.text, blocks: r.blocks }),
            () => client.chat.postEphemeral({ channel: m.channel, user: m.user, ...this.plainText(r) }),
          );
          return 'done';
        });
        return;
      }
      case 'alert': {
        // An alert about an app served only on Matrix has no Slack channel.
        if (!m.channel) return;
        const alertChannel = m.channel;
        const r = renderAlert(m);
        // One alert per key: the first is posted, repeats edit it with the count.
        const ak = this.key('alert', m.key);
        const known = await store.get(ak);
        if (known) {
          const [channel, ts] = known.split(' ') as [string, string];
          await once('alert-update', async () => {
            await this.call('chat.update', () =>
              client.chat.update({ channel, ts, text: r.text, blocks: r.blocks }),
            );
            return 'done';
          });
        } else {
          const ts = await once('alert', async () => {
            const res = await this.call(
              'chat.postMessage',
              () =>
                client.chat.postMessage({
                  [AHEAD]: true,
                  channel: alertChannel,
                  text: r.text,
                  blocks: r.blocks,
                }),
              () => client.chat.postMessage({ [AHEAD]: true, channel: alertChannel, ...this.plainText(r) }),
            );
            return `${res.channel ?? alertChannel} ${res.ts ?? ''}`;
          });
          await store.set(ak, ts, 'EX', 86_400);
          const [achannel, pts] = ts.split(' ') as [string, string];
          if (r.file) await this.upload(once, 'alert:file', achannel, pts, r.file);
          // The memory chart (PNG) in the alert's thread, with files upload v2.
          if (m.chart) await this.upload(once, 'alert:chart', achannel, pts, m.chart);
          if (m.releaseId) {
            const rel = await this.deps.releases.get(m.releaseId);
            if (rel?.thread) {
              await this.post(once, 'alert:thread', rel.thread.channel, rel.thread.ts, {
                text: r.text,
                blocks: r.blocks.filter((b: Block) => b['type'] !== 'actions'),
              });
            }
          }
        }
        return;
      }
    }
  }
}
