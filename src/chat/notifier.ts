// The notify queue consumer: renders each Outbound the domain announced and
// sends it to Slack.
//
// Order is kept per conversation, not globally: each message goes to a lane
// (the release's thread, a channel, an alert; laneOf) and a lane sends one
// message at a time, in the order they were announced, while other lanes go
// on (src/queue/lanes.ts). Calls are paced per Slack's tiers — chat.postMessage
// about 1 a second per channel, chat.update a per-workspace tier — and a 429
// holds only the bucket it came from (that channel, or chat.update) for
// Retry-After; the message retries in its lane, so its thread keeps its order
// and every other thread and channel carries on. Network errors and 5xx retry
// in the lane with an exponential backoff. Permanent errors (a channel that
// does not exist, a bot not in the channel) are logged and the message
// dropped — retrying them would hold up the thread forever.
//
// The WebClient neither retries nor waits out a 429 by itself
// (rejectRateLimitedCalls, retries 0): the pacing here decides.
//
// Order holds within one notifier process (BullMQ hands jobs out in order and
// they enter their lanes in that order); with several bot replicas a thread's
// messages may be taken by two replicas at once.
//
// Each step of a job (post, store ts, upload) is recorded under the job's id,
// so a job retried after a rate limit in its second call does not post twice.
import { createHash } from 'node:crypto';
import { DelayedError, type Job, type Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { FerryConfig } from '../config/schema.ts';
import type { Outbound } from '../domain/ports.ts';
import type { Release } from '../domain/release.ts';
import type { Logger } from '../logging.ts';
import { Lanes, Pacer, type Rate } from '../queue/lanes.ts';
import { QUEUES } from '../queue/names.ts';
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

export interface NotifierDeps {
  config: () => FerryConfig;
  releases: {
    get(id: string): Promise<Release | undefined>;
    patch(id: string, change: (r: Release) => Release): Promise<Release | undefined>;
  };
  /** Plain Redis connection for the notifier's bookkeeping (message ts, sent steps). */
  store: Redis;
  /** BullMQ connection (maxRetriesPerRequest: null). */
  connection: Redis;
  /** The notify queue (QueueAnnouncer.queue): rate limits are set on it. */
  queue: Queue<Outbound>;
  prefix?: string;
  client: ChatClient;
  log: Logger;
  /** Longest backoff for 5xx / network errors (ms). */
  maxBackoffMs?: number;
  /** Messages in flight at once across lanes (default 256): a lane held by a 429 keeps only its own. */
  concurrency?: number;
  /** Slack's tiers (defaults: postMessage 1/s per channel; chat.update 50/min per workspace, burst 20). */
  rates?: { postMessage?: Rate; update?: Rate };
}

/** Slack's documented pace: chat.postMessage ~1/s per channel; chat.update is Tier 3 (50+/min). */
export const SLACK_RATES = {
  postMessage: { count: 1, perMs: 1000, burst: 1 },
  update: { count: 50, perMs: 60_000, burst: 20 },
} satisfies Record<string, Rate>;

/** The conversation whose order a message must keep: the release's thread, else its channel. */
export function laneOf(m: Outbound): string {
  switch (m.kind) {
    case 'card':
    case 'reply':
      return `release:${m.releaseId}`;
    case 'message':
      return m.threadOf ? `release:${m.threadOf}` : `channel:${m.channel}`;
    case 'ephemeral':
      return `ephemeral:${m.channel}:${m.user}`;
    case 'alert':
      return `alert:${m.key}`;
  }
}

export interface Notifier {
  worker: Worker<Outbound>;
  close(): Promise<void>;
}

type Failure =
  | { kind: 'ratelimited'; retryAfterMs: number }
  | { kind: 'transient'; detail: string }
  | { kind: 'permanent'; detail: string };

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
export function classify(err: unknown): Failure {
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

class Permanent extends Error {}

const hashOf = (r: Rendered) =>
  createHash('sha1')
    .update(JSON.stringify([r.text, r.blocks]))
    .digest('hex');

export function startNotifier(deps: NotifierDeps): Notifier {
  const p = deps.prefix ?? 'ferry';
  const key = (...parts: string[]) => [p, 'slack', ...parts].join(':');
  const maxBackoff = deps.maxBackoffMs ?? 30_000;
  const { log } = deps;
  const lanes = new Lanes();
  const postPace = new Pacer(deps.rates?.postMessage ?? SLACK_RATES.postMessage);
  const updatePace = new Pacer(deps.rates?.update ?? SLACK_RATES.update);
  /** A call paced on its bucket; a 429 holds that bucket (only) for Retry-After, then the error goes up. */
  const paced = async <T>(pacer: Pacer, bucket: string, call: () => Promise<T>): Promise<T> => {
    await pacer.take(bucket);
    try {
      return await call();
    } catch (err) {
      const f = classify(err);
      if (f.kind === 'ratelimited') pacer.hold(bucket, Date.now() + f.retryAfterMs);
      throw err;
    }
  };
  const raw = deps.client;
  const client: ChatClient = {
    chat: {
      postMessage: (a) => paced(postPace, String(a['channel']), () => raw.chat.postMessage(a)),
      update: (a) => paced(updatePace, 'chat.update', () => raw.chat.update(a)),
      postEphemeral: (a) => raw.chat.postEphemeral(a),
    },
    filesUploadV2: (a) => raw.filesUploadV2(a),
  };
  let closing = false;

  /** Runs `fn` once per job and step: a retried job skips what it already did. */
  async function step<T extends string>(job: Job, name: string, fn: () => Promise<T>): Promise<T> {
    const k = key('job', String(job.id));
    const done = await deps.store.hget(k, name);
    if (done !== null) return done as T;
    const v = await fn();
    await deps.store.multi().hset(k, name, v).expire(k, 86_400).exec();
    return v;
  }

  async function call<T>(what: string, fn: () => Promise<T>, fallback?: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const f = classify(err);
      if (f.kind !== 'permanent') throw err;
      if (fallback && BLOCK_ERRORS.has(f.detail)) {
        log.warn({ what, error: f.detail }, 'Slack refused the blocks; sending plain text');
        return fallback();
      }
      throw new Permanent(`${what}: ${f.detail}`);
    }
  }

  const plainText = (r: Rendered) => ({ text: r.text.slice(0, 3000) });

  async function upload(
    job: Job,
    name: string,
    channel: string,
    threadTs: string | undefined,
    file: { name: string; text: string; bytes?: string },
  ) {
    await step(job, name, async () => {
      await call('files.uploadV2', () =>
        client.filesUploadV2({
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
  async function ensureCard(
    job: Job,
    releaseId: string,
    edit: boolean,
  ): Promise<{ channel: string; ts: string } | undefined> {
    const rel = await deps.releases.get(releaseId);
    if (!rel) {
      log.warn({ releaseId }, 'card for an unknown release; dropped');
      return undefined;
    }
    if (rel.thread) {
      if (edit) {
        const rendered = renderCard(rel);
        const h = hashOf(rendered);
        const hk = key('card', rel.id);
        if ((await deps.store.get(hk)) !== h) {
          await call(
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
                ...plainText(rendered),
              }),
          );
          await deps.store.set(hk, h, 'EX', 7 * 86_400);
        }
      }
      return rel.thread;
    }
    const channel = deps.config().apps[rel.app]?.channels.releases ?? rel.requestChannel;
    if (!channel) throw new Permanent(`no releases channel for ${rel.app}`);
    const ts = await step(job, `card:${rel.id}`, async () => {
      const rendered = renderCard(rel);
      const res = await call(
        'chat.postMessage',
        () =>
          client.chat.postMessage({
            channel,
            text: rendered.text,
            blocks: rendered.blocks,
            unfurl_links: false,
          }),
        () => client.chat.postMessage({ channel, ...plainText(rendered) }),
      );
      await deps.store.set(key('card', rel.id), hashOf(rendered), 'EX', 7 * 86_400);
      return `${res.channel ?? channel} ${res.ts ?? ''}`;
    });
    const [ch, t] = ts.split(' ') as [string, string];
    const thread = { channel: ch, ts: t };
    await deps.releases.patch(rel.id, (r) => ({ ...r, thread }));
    // The state may have moved while posting: bring the card up to date.
    const now = await deps.releases.get(rel.id);
    if (now && now.rev !== rel.rev + 1) {
      const rendered = renderCard(now);
      const h = hashOf(rendered);
      if ((await deps.store.get(key('card', rel.id))) !== h) {
        await call('chat.update', () =>
          client.chat.update({ channel: ch, ts: t, text: rendered.text, blocks: rendered.blocks }),
        );
        await deps.store.set(key('card', rel.id), h, 'EX', 7 * 86_400);
      }
    }
    return thread;
  }

  async function post(
    job: Job,
    name: string,
    channel: string,
    threadTs: string | undefined,
    r: Rendered,
    fileName?: string,
  ) {
    await step(job, name, async () => {
      const base = { channel, ...(threadTs ? { thread_ts: threadTs } : {}), unfurl_links: false };
      const res = await call(
        'chat.postMessage',
        () => client.chat.postMessage({ ...base, text: r.text, blocks: r.blocks }),
        () => client.chat.postMessage({ ...base, ...plainText(r) }),
      );
      return res.ts ?? '';
    });
    if (r.file)
      await upload(job, `${name}:file`, channel, threadTs, { ...r.file, name: fileName ?? r.file.name });
  }

  async function handle(job: Job<Outbound>): Promise<void> {
    const m = job.data;
    switch (m.kind) {
      case 'card':
        await ensureCard(job, m.releaseId, true);
        return;
      case 'reply': {
        const thread = await ensureCard(job, m.releaseId, false);
        if (!thread) return;
        const r = renderText(m.text, {
          ...(m.snippet ? { snippet: m.snippet } : {}),
          ...(m.file ? { file: m.file } : {}),
          fileName: `${m.releaseId}.txt`,
        });
        await post(job, 'reply', thread.channel, thread.ts, r);
        return;
      }
      case 'message': {
        let threadTs: string | undefined;
        let channel = m.channel;
        if (m.threadOf) {
          const rel = await deps.releases.get(m.threadOf);
          if (rel?.thread) {
            threadTs = rel.thread.ts;
            channel = rel.thread.channel;
          }
        }
        const r = renderText(m.text, {
          ...(m.snippet ? { snippet: m.snippet } : {}),
          ...(m.file ? { file: m.file } : {}),
        });
        await post(job, 'message', channel, threadTs, r);
        return;
      }
      case 'ephemeral': {
        const r = renderEphemeral(m.text);
        await step(job, 'ephemeral', async () => {
          await call(
            'chat.postEphemeral',
            () =>
              client.chat.postEphemeral({ channel: m.channel, user: m.user, text: r.text, blocks: r.blocks }),
            () => client.chat.postEphemeral({ channel: m.channel, user: m.user, ...plainText(r) }),
          );
          return 'done';
        });
        return;
      }
      case 'alert': {
        const r = renderAlert(m);
        // One alert per key: the first is posted, repeats edit it with the count.
        const ak = key('alert', m.key);
        const known = await deps.store.get(ak);
        if (known) {
          const [channel, ts] = known.split(' ') as [string, string];
          await step(job, 'alert-update', async () => {
            await call('chat.update', () =>
              client.chat.update({ channel, ts, text: r.text, blocks: r.blocks }),
            );
            return 'done';
          });
        } else {
          const ts = await step(job, 'alert', async () => {
            const res = await call(
              'chat.postMessage',
              () => client.chat.postMessage({ channel: m.channel, text: r.text, blocks: r.blocks }),
              () => client.chat.postMessage({ channel: m.channel, ...plainText(r) }),
            );
            return `${res.channel ?? m.channel} ${res.ts ?? ''}`;
          });
          await deps.store.set(ak, ts, 'EX', 86_400);
          if (r.file) {
            const [channel, pts] = ts.split(' ') as [string, string];
            await upload(job, 'alert:file', channel, pts, r.file);
          }
          if (m.releaseId) {
            const rel = await deps.releases.get(m.releaseId);
            if (rel?.thread) {
              await post(job, 'alert:thread', rel.thread.channel, rel.thread.ts, {
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

  /** Sends one message, retrying in its lane until it is sent or refused for good. */
  async function deliver(job: Job<Outbound>, token: string | undefined): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await handle(job);
        return;
      } catch (err) {
        if (err instanceof Permanent) {
          log.warn(
            { job: job.id, kind: job.data.kind, error: err.message },
            'message dropped: Slack refused it',
          );
          return;
        }
        const f = classify(err);
        if (f.kind === 'permanent') throw err;
        // A 429 has already held its bucket: the next try waits there, other lanes do not.
        const ms = f.kind === 'ratelimited' ? 0 : Math.min(maxBackoff, 250 * 2 ** Math.min(attempt, 10));
        log.info(
          {
            job: job.id,
            kind: job.data.kind,
            lane: laneOf(job.data),
            waitMs: ms,
            why: f.kind === 'ratelimited' ? '429' : f.detail,
          },
          'Slack busy; the message waits in its lane',
        );
        if (closing) {
          // Shutting down: hand the job back to the queue rather than hold the close.
          await job.moveToDelayed(Date.now() + Math.max(ms, 1000), token);
          throw new DelayedError();
        }
        if (ms) await new Promise((r) => setTimeout(r, ms));
      }
    }
  }

  const worker = new Worker<Outbound>(
    QUEUES.notify,
    (job, token) => lanes.run(laneOf(job.data), () => deliver(job, token)),
    {
      connection: deps.connection,
      ...(deps.prefix ? { prefix: deps.prefix } : {}),
      concurrency: deps.concurrency ?? 256,
    },
  );
  worker.on('error', (err) => log.warn({ err: err.message }, 'notify worker error'));
  // Earlier versions pinned the queue to one message at a time across replicas; lanes replace that.
  void deps.queue
    .removeGlobalConcurrency()
    .catch((err: Error) => log.warn({ err: err.message }, 'removeGlobalConcurrency failed'));
  return {
    worker,
    async close() {
      closing = true;
      await worker.close();
    },
  };
}

/** A file name that can be neither markup nor a path: letters, digits, '.', '_' and '-' (others become '_'). */
export function safeFileName(name: string): string {
  return name.replace(/[^\w.-]+/g, '_').slice(0, 120) || 'ferry.txt';
}
