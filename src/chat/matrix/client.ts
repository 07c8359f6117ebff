// The Matrix client Ferry's adapter talks through: matrix-js-sdk's HTTP layer
// (access token, errors as MatrixError, media upload) with the calls Ferry
// needs — send, edit in place (m.replace), thread replies (m.thread),
// reactions, m.file and m.image uploads, rooms (and m.direct) — and a /sync loop whose token lives in
// Redis. No end-to-end encryption: Ferry's rooms are unencrypted, as bots in
// ops rooms usually are.
//
// Rate limits: a 429 carries retry_after_ms (or Retry-After); every call waits
// that long and tries again, up to `maxRateLimitWaitMs` in all, then throws
// the MatrixError (the notify queue holds its line for the time it names).
//
// Sends are idempotent: each carries a transaction id derived from what the
// caller names it, and Synapse answers a repeated PUT with the same txnId with
// the first event's id, so a retried job never posts twice.
//
// Sync: the token of the last batch handled is stored under
// <prefix>:matrix:sync:<user>; a restarted bot (or one whose homeserver
// restarted) goes on from there. A handled event's id is also remembered for
// a day: if the process died between handling a batch and storing its token,
// the batch comes again and its events are skipped, not answered twice.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { ClientPrefix, createClient, type MatrixClient, MatrixError, Method } from 'matrix-js-sdk';
import type { Logger as SdkLogger } from 'matrix-js-sdk/lib/logger.js';
import type { Logger } from '../../logging.ts';

/** A Matrix event as /sync and /rooms/…/event return it (only the fields Ferry reads). */
export interface MatrixEvent {
  event_id: string;
  type: string;
  sender: string;
  room_id?: string;
  origin_server_ts?: number;
  state_key?: string;
  content: Record<string, unknown>;
  redacts?: string;
  unsigned?: { redacted_because?: unknown; transaction_id?: string; [k: string]: unknown };
}

/** The text content of a message: the plain body and, when there is formatting, its HTML. */
export interface MessageContent {
  body: string;
  html?: string;
  /** Users mentioned (m.mentions): their clients notify them. */
  mentions?: string[];
  msgtype?: 'm.text' | 'm.notice';
}

export interface SyncBatch {
  /** Timeline events of joined rooms, in order, with their room. */
  events: (MatrixEvent & { room_id: string })[];
  /** Rooms the user was invited to in this batch. */
  invites: string[];
}

export interface MatrixChatOptions {
  baseUrl: string;
  userId: string;
  accessToken: string;
  /** Redis for the sync token and the handled-event marks. */
  store?: Redis;
  prefix?: string;
  log?: Logger;
  /** The longest a call waits out 429s in all before throwing (default 30 s). */
  maxRateLimitWaitMs?: number;
  /** Told each time a call waits out a 429 (metrics, tests). */
  onRateLimited?: (waitMs: number, path: string) => void;
}

const NO_LOG = {
  info() {},
  warn() {},
  debug() {},
  error() {},
} as unknown as Logger;

const enc = encodeURIComponent;

/** The SDK's logger: its request-by-request debug lines dropped, its warnings into Ferry's log. */
function sdkLogger(log: Logger): SdkLogger {
  const quiet = () => {};
  const l: SdkLogger = {
    trace: quiet,
    debug: quiet,
    info: quiet,
    warn: (...msg: unknown[]) => log.warn({ sdk: msg.map(String).join(' ') }, 'matrix-js-sdk'),
    error: (...msg: unknown[]) => log.warn({ sdk: msg.map(String).join(' ') }, 'matrix-js-sdk'),
    getChild: () => l,
  };
  return l;
}

/** The SDK's per-request options (its type also wants the DOM's fetch priority, which Node ignores). */
type RequestOptions = Parameters<MatrixClient['http']['authedRequest']>[4];

/** A rate-limit error from Synapse: how long it asks to wait (ms), or undefined when it is not one. */
export function retryAfterMs(err: unknown): number | undefined {
  if (!(err instanceof MatrixError) || err.httpStatus !== 429) return undefined;
  let ms: number | null = null;
  try {
    ms = err.getRetryAfterMs();
  } catch {
    ms = null;
  }
  const fromBody = (err.data as { retry_after_ms?: unknown }).retry_after_ms;
  if (ms === null && typeof fromBody === 'number') ms = fromBody;
  return Math.max(1, ms ?? 1000);
}

/** Logs in with a password; returns the access token. */
export async function loginWithPassword(
  baseUrl: string,
  user: string,
  password: string,
  deviceId?: string,
): Promise<{ userId: string; accessToken: string; deviceId: string }> {
  const c = createClient({ baseUrl, logger: sdkLogger(NO_LOG) });
  const res = await c.loginRequest({
    type: 'm.login.password',
    identifier: { type: 'm.id.user', user },
    password,
    ...(deviceId ? { device_id: deviceId } : {}),
    initial_device_display_name: 'Ferry',
  });
  c.stopClient();
  return { userId: res.user_id, accessToken: res.access_token, deviceId: res.device_id };
}

export class MatrixChat {
  readonly sdk: MatrixClient;
  readonly userId: string;
  private readonly opts: MatrixChatOptions;
  private readonly log: Logger;
  private syncing = false;
  private syncAbort: AbortController | undefined;
  private syncDone: Promise<void> | undefined;

  constructor(opts: MatrixChatOptions) {
    this.opts = opts;
    this.userId = opts.userId;
    this.log = opts.log ?? NO_LOG;
    this.sdk = createClient({
      baseUrl: opts.baseUrl,
      accessToken: opts.accessToken,
      userId: opts.userId,
      logger: sdkLogger(this.log),
    });
  }

  private key(...parts: string[]): string {
    return [this.opts.prefix ?? 'ferry', 'matrix', ...parts].join(':');
  }

  /** Runs one HTTP call, waiting out 429s (retry_after_ms) up to the budget. */
  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const budget = this.opts.maxRateLimitWaitMs ?? 30_000;
    let waited = 0;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        const ms = retryAfterMs(err);
        if (ms === undefined || waited + ms > budget) throw err;
        this.opts.onRateLimited?.(ms, what);
        this.log.info({ what, waitMs: ms }, 'Matrix rate limit: waiting as the homeserver asks');
        waited += ms;
        await sleep(ms);
      }
    }
  }

  request<T>(
    method: Method,
    path: string,
    query?: Record<string, string>,
    body?: unknown,
    prefix?: ClientPrefix,
  ): Promise<T> {
    return this.call(path, () =>
      this.sdk.http.authedRequest<T>(
        method,
        path,
        query,
        body as Record<string, unknown> | undefined,
        (prefix ? { prefix } : undefined) as RequestOptions,
      ),
    );
  }

  // ---------------------------------------------------------------- rooms

  /** The room id of `#alias:server` (a `!room` id is returned as it is). */
  async resolveRoom(idOrAlias: string): Promise<string> {
    if (idOrAlias.startsWith('!')) return idOrAlias;
    const r = await this.request<{ room_id: string }>(Method.Get, `/directory/room/${enc(idOrAlias)}`);
    return r.room_id;
  }

  async join(idOrAlias: string): Promise<string> {
    const r = await this.request<{ room_id: string }>(Method.Post, `/join/${enc(idOrAlias)}`, undefined, {});
    return r.room_id;
  }

  async createRoom(opts: {
    alias?: string;
    name?: string;
    invite?: string[];
    isDirect?: boolean;
    preset?: 'private_chat' | 'public_chat' | 'trusted_private_chat';
  }): Promise<string> {
    const r = await this.request<{ room_id: string }>(Method.Post, '/createRoom', undefined, {
      ...(opts.alias ? { room_alias_name: opts.alias } : {}),
      ...(opts.name ? { name: opts.name } : {}),
      ...(opts.invite ? { invite: opts.invite } : {}),
      ...(opts.isDirect ? { is_direct: true } : {}),
      preset: opts.preset ?? 'private_chat',
    });
    return r.room_id;
  }

  async invite(roomId: string, userId: string): Promise<void> {
    try {
      await this.request(Method.Post, `/rooms/${enc(roomId)}/invite`, undefined, { user_id: userId });
    } catch (err) {
      // Already a member or already invited: nothing to do.
      if (err instanceof MatrixError && err.httpStatus === 403 && /already/i.test(err.message)) return;
      throw err;
    }
  }

  async members(roomId: string): Promise<string[]> {
    const r = await this.request<{ joined: Record<string, unknown> }>(
      Method.Get,
      `/rooms/${enc(roomId)}/joined_members`,
    );
    return Object.keys(r.joined);
  }

  // ---------------------------------------------------------------- events

  /**
   * Sends an event. `txn` names this send: the same name sends once (Synapse
   * deduplicates transaction ids per device), so retries are safe.
   */
  async send(roomId: string, type: string, content: Record<string, unknown>, txn?: string): Promise<string> {
    const txnId = txn ? txnIdOf(txn) : randomUUID();
    const r = await this.request<{ event_id: string }>(
      Method.Put,
      `/rooms/${enc(roomId)}/send/${enc(type)}/${enc(txnId)}`,
      undefined,
      content,
    );
    return r.event_id;
  }

  /** A message; in the thread of `threadRoot` when given. */
  sendMessage(
    roomId: string,
    message: MessageContent,
    opts: { threadRoot?: string; txn?: string } = {},
  ): Promise<string> {
    return this.send(
      roomId,
      'm.room.message',
      { ...messageBody(message), ...(opts.threadRoot ? threadRelation(opts.threadRoot) : {}) },
      opts.txn,
    );
  }

  /**
   * Replaces the content of `eventId` (m.replace). Returns false, sending
   * nothing, when that event was redacted meanwhile: an edit of a redacted
   * event shows nowhere, so the caller posts a new message instead.
   */
  async edit(roomId: string, eventId: string, message: MessageContent, txn?: string): Promise<boolean> {
    if (await this.isRedacted(roomId, eventId)) return false;
    const body = messageBody(message);
    try {
      await this.send(
        roomId,
        'm.room.message',
        {
          // Clients that do not know edits show the fallback: "* " and the new text.
          msgtype: body.msgtype,
          body: `* ${body.body}`,
          ...(body.formatted_body ? { format: body.format, formatted_body: `* ${body.formatted_body}` } : {}),
          'm.new_content': body,
          'm.relates_to': { rel_type: 'm.replace', event_id: eventId },
        },
        txn,
      );
      return true;
    } catch (err) {
      // Redacted between the check and the send: the server may refuse the relation.
      if (err instanceof MatrixError && err.httpStatus === 400 && (await this.isRedacted(roomId, eventId)))
        return false;
      throw err;
    }
  }

  /** Whether `eventId` has been redacted (or cannot be seen any more). */
  async isRedacted(roomId: string, eventId: string): Promise<boolean> {
    try {
      const e = await this.event(roomId, eventId);
      return Boolean(e.unsigned?.redacted_because) || Object.keys(e.content ?? {}).length === 0;
    } catch (err) {
      if (err instanceof MatrixError && err.httpStatus === 404) return true;
      throw err;
    }
  }

  event(roomId: string, eventId: string): Promise<MatrixEvent> {
    return this.request<MatrixEvent>(Method.Get, `/rooms/${enc(roomId)}/event/${enc(eventId)}`);
  }

  react(roomId: string, eventId: string, key: string, txn?: string): Promise<string> {
    return this.send(
      roomId,
      'm.reaction',
      { 'm.relates_to': { rel_type: 'm.annotation', event_id: eventId, key } },
      txn,
    );
  }

  async redact(roomId: string, eventId: string, reason?: string): Promise<void> {
    await this.request(
      Method.Put,
      `/rooms/${enc(roomId)}/redact/${enc(eventId)}/${enc(randomUUID())}`,
      undefined,
      reason ? { reason } : {},
    );
  }

  /** Uploads `text` as a file and posts it (m.file), in the thread of `threadRoot` when given. */
  async sendFile(
    roomId: string,
    file: { name: string; text: string; mimetype?: string },
    opts: { threadRoot?: string; txn?: string } = {},
  ): Promise<string> {
    const mimetype = file.mimetype ?? 'text/plain';
    const data = Buffer.from(file.text, 'utf8');
    const up = await this.call('upload', () =>
      this.sdk.uploadContent(data, { name: file.name, type: mimetype, includeFilename: true }),
    );
    return this.send(
      roomId,
      'm.room.message',
      {
        msgtype: 'm.file',
        body: file.name,
        filename: file.name,
        url: up.content_uri,
        info: { mimetype, size: data.length },
        ...(opts.threadRoot ? threadRelation(opts.threadRoot) : {}),
      },
      opts.txn,
    );
  }

  /**
   * Uploads an image (a PNG chart) and posts it (m.image), in the thread of
   * `threadRoot` when given. `description` is the body: what clients that show
   * no images (and notifications, and screen readers) read instead.
   */
  async sendImage(
    roomId: string,
    image: { name: string; bytes: Buffer; description: string; mimetype?: string },
    opts: { threadRoot?: string; txn?: string } = {},
  ): Promise<string> {
    const mimetype = image.mimetype ?? 'image/png';
    const up = await this.call('upload', () =>
      this.sdk.uploadContent(image.bytes, { name: image.name, type: mimetype, includeFilename: true }),
    );
    const size = mimetype === 'image/png' ? pngSize(image.bytes) : undefined;
    return this.send(
      roomId,
      'm.room.message',
      {
        msgtype: 'm.image',
        body: image.description || image.name,
        filename: image.name,
        url: up.content_uri,
        info: { mimetype, size: image.bytes.length, ...(size ? { w: size.w, h: size.h } : {}) },
        ...(opts.threadRoot ? threadRelation(opts.threadRoot) : {}),
      },
      opts.txn,
    );
  }

  /**
   * Marks `roomId` as the direct chat with `userId` in the bot's m.direct
   * account data, so the bot's own clients (and anyone reading its account
   * data) list it as a direct chat. The invitee's client learns it from the
   * invite's is_direct flag.
   */
  async markDirect(userId: string, roomId: string): Promise<void> {
    const path = `/user/${enc(this.userId)}/account_data/m.direct`;
    let direct: Record<string, string[]> = {};
    try {
      direct = await this.request<Record<string, string[]>>(Method.Get, path);
    } catch (err) {
      if (!(err instanceof MatrixError) || err.httpStatus !== 404) throw err;
    }
    const rooms = direct[userId] ?? [];
    if (rooms.includes(roomId)) return;
    await this.request(Method.Put, path, undefined, { ...direct, [userId]: [...rooms, roomId] });
  }

  /** Messages of a room, oldest first (for tests and catch-up reads). */
  async messages(roomId: string, limit = 100): Promise<MatrixEvent[]> {
    const r = await this.request<{ chunk: MatrixEvent[] }>(Method.Get, `/rooms/${enc(roomId)}/messages`, {
      dir: 'b',
      limit: String(limit),
    });
    return r.chunk.reverse();
  }

  /** Events related to `eventId` (a thread's replies, reactions, edits), oldest first. */
  async relations(roomId: string, eventId: string, relType?: string, limit = 100): Promise<MatrixEvent[]> {
    const r = await this.request<{ chunk: MatrixEvent[] }>(
      Method.Get,
      `/rooms/${enc(roomId)}/relations/${enc(eventId)}${relType ? `/${enc(relType)}` : ''}`,
      { dir: 'f', limit: String(limit) },
      undefined,
      ClientPrefix.V1,
    );
    return r.chunk;
  }

  // ---------------------------------------------------------------- sync

  /** The stored sync token, if any. */
  async syncToken(): Promise<string | null> {
    return this.opts.store ? await this.opts.store.get(this.key('sync', this.userId)) : null;
  }

  /**
   * Runs /sync until stop(): each batch of new timeline events (and invites)
   * goes to `onBatch`, then its token is stored. The first run with no stored
   * token only records where "now" is: history is never answered.
   */
  startSync(onBatch: (batch: SyncBatch) => Promise<void>, opts: { timeoutMs?: number } = {}): void {
    if (this.syncing) return;
    this.syncing = true;
    this.syncAbort = new AbortController();
    const signal = this.syncAbort.signal;
    const timeout = opts.timeoutMs ?? 30_000;
    this.syncDone = (async () => {
      let failures = 0;
      let since = await this.syncToken();
      while (!since && !signal.aborted) {
        try {
          since = (await this.syncOnce(undefined, 0, signal, syncFilter(0))).next_batch;
          await this.saveToken(since);
        } catch (err) {
          if (signal.aborted) break;
          this.log.warn({ err: (err as Error).message }, 'first Matrix sync failed; retrying');
          await sleep(retryAfterMs(err) ?? 1000, undefined, { signal }).catch(() => undefined);
        }
      }
      while (!signal.aborted) {
        try {
          const r = await this.syncOnce(since ?? undefined, timeout, signal, syncFilter(CATCH_UP_EVENTS));
          failures = 0;
          // (a room joined just now is "limited" too, with its few events: only a full batch lost some)
          for (const [room, j] of Object.entries(r.rooms?.join ?? {}))
            if (j.timeline?.limited && (j.timeline.events?.length ?? 0) >= CATCH_UP_EVENTS)
              this.log.warn(
                { room, max: CATCH_UP_EVENTS },
                'more events than one sync batch holds; older ones skipped',
              );
          const batch = batchOf(r);
          if (batch.events.length || batch.invites.length) await onBatch(await this.unseen(batch));
          since = r.next_batch;
          await this.saveToken(since);
        } catch (err) {
          if (signal.aborted) break;
          // The homeserver restarting, or a network blip: keep the token, back off, go on.
          failures++;
          const ms = retryAfterMs(err) ?? Math.min(10_000, 250 * 2 ** Math.min(failures, 6));
          this.log.warn({ err: (err as Error).message, waitMs: ms }, 'Matrix sync failed; retrying');
          await sleep(ms, undefined, { signal }).catch(() => undefined);
        }
      }
    })();
  }

  async stopSync(): Promise<void> {
    this.syncing = false;
    this.syncAbort?.abort();
    await this.syncDone?.catch(() => undefined);
  }

  private async saveToken(token: string): Promise<void> {
    await this.opts.store?.set(this.key('sync', this.userId), token);
  }

  /** Drops events already handled (a batch repeated after a crash before its token was stored). */
  private async unseen(batch: SyncBatch): Promise<SyncBatch> {
    const store = this.opts.store;
    if (!store) return batch;
    const events: SyncBatch['events'] = [];
    for (const e of batch.events) {
      const fresh = await store.set(this.key('seen', e.event_id), '1', 'EX', 86_400, 'NX');
      if (fresh === 'OK') events.push(e);
    }
    return { ...batch, events };
  }

  private syncOnce(
    since: string | undefined,
    timeoutMs: number,
    signal: AbortSignal,
    filter?: string,
  ): Promise<SyncResponse> {
    // Not through call(): the loop itself waits out a 429 (it must stay stoppable).
    return this.sdk.http.authedRequest<SyncResponse>(
      Method.Get,
      '/sync',
      {
        timeout: String(timeoutMs),
        ...(since ? { since } : {}),
        ...(filter ? { filter } : {}),
      },
      undefined,
      { localTimeoutMs: timeoutMs + 30_000, abortSignal: signal } as RequestOptions,
    );
  }

  close(): Promise<void> {
    this.sdk.stopClient();
    return this.stopSync();
  }
}

/** The most timeline events per room one sync returns: what a bot that was away catches up on. */
const CATCH_UP_EVENTS = 500;

/** Only what the bot reads: room timelines (no presence, typing, receipts or account data). */
function syncFilter(timelineLimit: number): string {
  return JSON.stringify({
    presence: { not_types: ['*'] },
    account_data: { not_types: ['*'] },
    room: {
      ephemeral: { not_types: ['*'] },
      account_data: { not_types: ['*'] },
      state: { lazy_load_members: true },
      timeline: { limit: timelineLimit },
    },
  });
}

interface SyncResponse {
  next_batch: string;
  rooms?: {
    join?: Record<string, { timeline?: { events?: MatrixEvent[]; limited?: boolean } }>;
    invite?: Record<string, unknown>;
  };
}

function batchOf(r: SyncResponse): SyncBatch {
  const events: SyncBatch['events'] = [];
  for (const [roomId, room] of Object.entries(r.rooms?.join ?? {}))
    for (const e of room.timeline?.events ?? []) events.push({ ...e, room_id: roomId });
  events.sort((a, b) => (a.origin_server_ts ?? 0) - (b.origin_server_ts ?? 0));
  return { events, invites: Object.keys(r.rooms?.invite ?? {}) };
}

/** A transaction id from a caller's name for a send (Matrix allows [A-Za-z0-9._~-] comfortably). */
function txnIdOf(name: string): string {
  return `ferry.${Buffer.from(name).toString('base64url')}`.slice(0, 200);
}

function messageBody(m: MessageContent): Record<string, unknown> {
  return {
    msgtype: m.msgtype ?? 'm.text',
    body: m.body,
    ...(m.html ? { format: 'org.matrix.custom.html', formatted_body: m.html } : {}),
    ...(m.mentions ? { 'm.mentions': { user_ids: m.mentions } } : {}),
  };
}

/** m.thread relation, with the reply fallback clients without threads use. */
function threadRelation(root: string): Record<string, unknown> {
  return {
    'm.relates_to': {
      rel_type: 'm.thread',
      event_id: root,
      is_falling_back: true,
      'm.in_reply_to': { event_id: root },
    },
  };
}

/** Width and height of a PNG from its IHDR chunk (undefined when the bytes are no PNG). */
export function pngSize(bytes: Buffer): { w: number; h: number } | undefined {
  const signature = '89504e470d0a1a0a';
  if (bytes.length < 24 || bytes.subarray(0, 8).toString('hex') !== signature) return undefined;
  if (bytes.subarray(12, 16).toString('latin1') !== 'IHDR') return undefined;
  return { w: bytes.readUInt32BE(16), h: bytes.readUInt32BE(20) };
}
