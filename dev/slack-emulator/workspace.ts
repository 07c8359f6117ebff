// The emulated workspace's state — users, channels, messages, ephemerals, modals, files, and the records
// of what happened (Web API calls, deliveries, response_url posts) — with the queries tests and the
// console read and the message bookkeeping every part shares. The Web API (web-api/), the deliveries to
// the bot (events/) and the console (console/) all work on one Workspace.

import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { normalizeBlocks, validateBlocks } from './blocks.ts';
import { DEFAULT_CHANNELS, DEFAULT_USERS, type InjectRule, type SlackEmulatorOptions } from './options.ts';
import { SlackRateLimits } from './rate-limits.ts';
import type {
  ApiCall,
  Block,
  ChangeEvent,
  Delivery,
  EmulatorChannel,
  EmulatorUser,
  EphemeralMessage,
  Json,
  ResponseUrlPost,
  SlackFile,
  StoredMessage,
  StoredView,
} from './types.ts';
import { ApiError } from './util.ts';

export type WorkspaceChannel = EmulatorChannel & { created: number; isIm?: boolean };

export interface Trigger {
  user: string;
  channel?: string;
  created: number;
  used: boolean;
}

export interface ResponseUrlState {
  kind: 'command' | 'action';
  channel: string;
  user: string;
  created: number;
  uses: number;
  messageTs?: string;
  ephemeral?: boolean;
  threadTs?: string;
}

export class Workspace extends EventEmitter {
  readonly team: { id: string; domain: string; name: string };
  readonly bot: { userId: string; botId: string; appId: string; name: string };
  readonly signingSecret: string;
  readonly botToken: string;
  readonly appToken: string | undefined;
  botEventsUrl: string | undefined;
  readonly verificationToken: string;
  /** How long Slack waits for an ack before giving up (mutable so tests can shorten it). */
  ackTimeoutMs: number;
  readonly triggerTtlMs: number;
  readonly socketWaitMs: number;
  readonly socketPingIntervalMs: number;
  /** http://host:port of the running server; set once it listens. */
  baseUrl = '';

  /** Every Web API call, in order. */
  readonly calls: ApiCall[] = [];
  /** Every delivery to the bot (slash commands, interactivity, events), in order. */
  readonly deliveries: Delivery[] = [];
  /** Everything POSTed to response_url's. */
  readonly responses: ResponseUrlPost[] = [];

  readonly users = new Map<string, EmulatorUser>();
  readonly channels = new Map<string, WorkspaceChannel>();
  readonly msgs = new Map<string, StoredMessage[]>();
  readonly ephemeralList: EphemeralMessage[] = [];
  readonly viewMap = new Map<string, StoredView>();
  readonly modalStacks = new Map<string, string[]>();
  readonly fileMap = new Map<string, SlackFile>();
  readonly fileData = new Map<string, Buffer>();
  readonly uploadTokens = new Map<string, string>();
  readonly triggers = new Map<string, Trigger>();
  readonly responseUrls = new Map<string, ResponseUrlState>();
  /** Socket Mode tickets handed out by apps.connections.open, with their issue time. */
  readonly tickets = new Map<string, number>();
  /** Fault injection rules for the Web API. */
  readonly rules: InjectRule[] = [];
  /** Slack's rate limits, when enforced (options.rateLimits). */
  readonly rateLimits: SlackRateLimits | undefined;
  private lastUs = 0;

  constructor(opts: SlackEmulatorOptions) {
    super();
    this.setMaxListeners(100);
    this.signingSecret = opts.signingSecret;
    this.botToken = opts.botToken;
    this.appToken = opts.appToken;
    this.botEventsUrl = opts.botEventsUrl;
    this.team = opts.team ?? { id: 'T0FERRY', domain: 'ferry-dev', name: 'Ferry Dev' };
    this.bot = opts.bot ?? { userId: 'U_FERRYBOT', botId: 'B_FERRY', appId: 'A_FERRY', name: 'ferry' };
    this.verificationToken = opts.verificationToken ?? 'emulatorVerificationToken';
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 3000;
    this.triggerTtlMs = opts.triggerTtlMs ?? 3000;
    this.socketWaitMs = opts.socketWaitMs ?? 10_000;
    this.socketPingIntervalMs = opts.socketPingIntervalMs ?? 10_000;
    if (opts.rateLimits)
      this.rateLimits = new SlackRateLimits(opts.rateLimits === true ? {} : opts.rateLimits);
    for (const u of opts.users ?? DEFAULT_USERS) this.users.set(u.id, { ...u });
    this.users.set(this.bot.userId, {
      id: this.bot.userId,
      name: this.bot.name,
      realName: 'Ferry',
      isBot: true,
    });
    const now = Math.floor(Date.now() / 1000);
    for (const c of opts.channels ?? DEFAULT_CHANNELS) {
      this.channels.set(c.id, { botMember: true, ...c, created: now });
      this.msgs.set(c.id, []);
    }
  }

  // ---------------------------------------------------------------- state for tests and the console

  /** Messages in a channel (or all channels), oldest first, including thread replies, with edits applied. */
  messages(channel?: string): StoredMessage[] {
    const ids = channel ? [this.resolveChannelId(channel) ?? channel] : [...this.msgs.keys()];
    return ids
      .flatMap((id) => this.msgs.get(id) ?? [])
      .sort((a, b) => Number(a.ts) - Number(b.ts))
      .map((m) => structuredClone(m));
  }
  /** Top-level messages of a channel (what the channel view shows). */
  channelMessages(channel: string): StoredMessage[] {
    return this.messages(channel).filter(
      (m) => m.thread_ts === undefined || m.thread_ts === m.ts || m.subtype === 'thread_broadcast',
    );
  }
  /** Parent message followed by its replies. */
  thread(channel: string, ts: string): StoredMessage[] {
    return this.messages(channel).filter((m) => m.ts === ts || m.thread_ts === ts);
  }
  message(channel: string, ts: string): StoredMessage | undefined {
    return this.messages(channel).find((m) => m.ts === ts);
  }
  ephemerals(user?: string): EphemeralMessage[] {
    return this.ephemeralList
      .filter((e) => !e.deleted && (!user || e.user === user))
      .map((e) => structuredClone(e));
  }
  views(user?: string): StoredView[] {
    return [...this.viewMap.values()].filter((v) => !user || v.user === user).map((v) => structuredClone(v));
  }
  /** The modal currently on top of a user's stack. */
  openView(user: string): StoredView | undefined {
    const id = this.modalStacks.get(user)?.at(-1);
    const v = id ? this.viewMap.get(id) : undefined;
    return v ? structuredClone(v) : undefined;
  }
  files(): SlackFile[] {
    return [...this.fileMap.values()].map((f) => structuredClone(f));
  }
  fileContent(id: string): Buffer | undefined {
    return this.fileData.get(id);
  }
  userList(): EmulatorUser[] {
    return [...this.users.values()].map((u) => ({ ...u }));
  }
  channelList(): (EmulatorChannel & { isIm?: boolean })[] {
    return [...this.channels.values()].map((c) => ({ ...c }));
  }
  get lastDelivery(): Delivery | undefined {
    return this.deliveries.at(-1);
  }

  /** Resolves when `pred` holds, re-checking on every state change. */
  waitFor<T>(pred: () => T | undefined | false | null, timeoutMs = 10_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const v = pred();
        if (v) {
          cleanup();
          resolve(v);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`waitFor: condition not met within ${timeoutMs} ms`));
      }, timeoutMs);
      const poll = setInterval(check, 50);
      const cleanup = (): void => {
        clearTimeout(timer);
        clearInterval(poll);
        this.off('change', check);
      };
      this.on('change', check);
      check();
    });
  }

  /** Listen to state changes (messages, edits, ephemerals, views, files, deliveries, socket). */
  onChange(listener: (e: ChangeEvent) => void): () => void {
    this.on('change', listener);
    return () => this.off('change', listener);
  }

  changed(e: ChangeEvent): void {
    this.emit('change', e);
  }

  /** Add a user or channel at runtime. */
  addUser(u: EmulatorUser): void {
    this.users.set(u.id, { ...u });
  }
  addChannel(c: EmulatorChannel): void {
    this.channels.set(c.id, { botMember: true, ...c, created: Math.floor(Date.now() / 1000) });
    if (!this.msgs.has(c.id)) this.msgs.set(c.id, []);
  }

  // ---------------------------------------------------------------- ids, tokens, lookups

  /** Message timestamps are unique and increasing, as Slack's are within a channel. */
  nextTs(): string {
    let us = Date.now() * 1000;
    if (us <= this.lastUs) us = this.lastUs + 1;
    this.lastUs = us;
    return `${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, '0')}`;
  }

  newTrigger(user: string, channel?: string): string {
    const id = `${Date.now()}${Math.floor(Math.random() * 1000)}.${Math.floor(Math.random() * 1e11)}.${randomBytes(16).toString('hex')}`;
    const t: Trigger = { user, created: Date.now(), used: false };
    if (channel !== undefined) t.channel = channel;
    this.triggers.set(id, t);
    return id;
  }

  newResponseUrl(state: Omit<ResponseUrlState, 'created' | 'uses'>): string {
    const id = `${Math.floor(Math.random() * 1e12)}`;
    const secret = randomBytes(12).toString('base64url');
    const key = `${id}/${secret}`;
    this.responseUrls.set(key, { ...state, created: Date.now(), uses: 0 });
    return `${this.baseUrl}/${state.kind === 'command' ? 'commands' : 'actions'}/${this.team.id}/${key}`;
  }

  resolveChannelId(ref: string): string | undefined {
    if (this.channels.has(ref)) return ref;
    const name = ref.replace(/^#/, '');
    for (const c of this.channels.values()) if (c.name === name && !c.isIm) return c.id;
    if (this.users.has(ref)) return this.imFor(ref);
    return undefined;
  }

  imFor(userId: string): string {
    const id = `D_${userId}`;
    if (!this.channels.has(id)) {
      const u = this.users.get(userId);
      this.channels.set(id, {
        id,
        name: u?.name ?? userId,
        isIm: true,
        botMember: true,
        created: Math.floor(Date.now() / 1000),
      });
      this.msgs.set(id, []);
    }
    return id;
  }

  userObj(id: string): Json {
    return {
      id,
      username: this.users.get(id)?.name ?? id,
      name: this.users.get(id)?.name ?? id,
      team_id: this.team.id,
    };
  }

  channelOrThrow(ref: unknown): WorkspaceChannel {
    if (typeof ref !== 'string' || ref === '') throw new ApiError('channel_not_found');
    const id = this.resolveChannelId(ref);
    const ch = id ? this.channels.get(id) : undefined;
    if (!ch) throw new ApiError('channel_not_found');
    return ch;
  }

  findMessage(channel: string, ts: string): StoredMessage | undefined {
    return this.msgs.get(channel)?.find((m) => m.ts === ts);
  }

  // ---------------------------------------------------------------- arguments and Block Kit

  parseBlocksArg(v: unknown): Block[] | undefined {
    if (v === undefined || v === null || v === '') return undefined;
    let parsed: unknown = v;
    if (typeof v === 'string') {
      try {
        parsed = JSON.parse(v);
      } catch {
        throw new ApiError('invalid_blocks_format');
      }
    }
    if (!Array.isArray(parsed)) throw new ApiError('invalid_blocks_format');
    return parsed as Block[];
  }

  parseJsonArg(v: unknown, code = 'invalid_arguments'): unknown {
    if (typeof v !== 'string') return v;
    try {
      return JSON.parse(v);
    } catch {
      throw new ApiError(code);
    }
  }

  checkBlocks(blocks: Block[] | undefined, surface: 'message' | 'modal' = 'message'): Block[] | undefined {
    if (blocks === undefined) return undefined;
    const errors = validateBlocks(blocks, surface);
    if (errors.length > 0) {
      throw new ApiError('invalid_blocks', {
        errors,
        response_metadata: { messages: errors.map((e) => `[ERROR] ${e}`) },
      });
    }
    return normalizeBlocks(blocks);
  }

  // ---------------------------------------------------------------- messages

  botProfile(): Json {
    return {
      id: this.bot.botId,
      app_id: this.bot.appId,
      name: this.bot.name,
      deleted: false,
      team_id: this.team.id,
      icons: { image_36: '', image_48: '', image_72: '' },
    };
  }

  publicMessage(m: StoredMessage): Json {
    const { channel: _c, history: _h, ...rest } = structuredClone(m);
    return rest as Json;
  }

  /** Adds a message to a channel (and the thread bookkeeping of its parent). */
  storeMessage(m: StoredMessage): StoredMessage {
    const list = this.msgs.get(m.channel) ?? [];
    this.msgs.set(m.channel, list);
    list.push(m);
    if (m.thread_ts && m.thread_ts !== m.ts) {
      const parent = list.find((p) => p.ts === m.thread_ts);
      if (parent) {
        parent.thread_ts = parent.ts;
        parent.reply_count = (parent.reply_count ?? 0) + 1;
        parent.reply_users = [...new Set([...(parent.reply_users ?? []), m.user])];
        parent.latest_reply = m.ts;
      }
    }
    this.changed(
      m.thread_ts
        ? { type: 'message', channel: m.channel, ts: m.ts, thread_ts: m.thread_ts }
        : { type: 'message', channel: m.channel, ts: m.ts },
    );
    return m;
  }

  threadParent(channel: string, threadTs: unknown): string | undefined {
    if (threadTs === undefined || threadTs === null || threadTs === '') return undefined;
    const ts = String(threadTs);
    const parent = this.findMessage(channel, ts);
    if (!parent) throw new ApiError('thread_not_found');
    if (parent.thread_ts !== undefined && parent.thread_ts !== parent.ts) {
      throw new ApiError('invalid_thread_ts', {
        detail: `thread_ts ${ts} is a reply in thread ${parent.thread_ts}; use the parent's ts`,
      });
    }
    return ts;
  }

  botMessage(channel: string, fields: Partial<StoredMessage>): StoredMessage {
    return {
      type: 'message',
      channel,
      ts: this.nextTs(),
      user: this.bot.userId,
      bot_id: this.bot.botId,
      app_id: this.bot.appId,
      text: '',
      team: this.team.id,
      bot_profile: this.botProfile(),
      ...fields,
    };
  }

  userMessage(channel: string, user: string, text: string, threadTs?: string): StoredMessage {
    const m: StoredMessage = { type: 'message', channel, ts: this.nextTs(), user, text, team: this.team.id };
    if (threadTs) m.thread_ts = threadTs;
    return m;
  }

  addEphemeral(e: Omit<EphemeralMessage, 'type' | 'ts'>): EphemeralMessage {
    const eph: EphemeralMessage = { type: 'message', ts: this.nextTs(), ...e };
    this.ephemeralList.push(eph);
    this.changed({ type: 'ephemeral', channel: e.channel, user: e.user, ts: eph.ts });
    return eph;
  }

  /** Records the previous text and blocks of an edited message (the console shows "edited"). */
  keepHistory(m: StoredMessage): void {
    m.history = [
      ...(m.history ?? []),
      { ts: this.nextTs(), text: m.text, ...(m.blocks ? { blocks: m.blocks } : {}) },
    ];
  }

  deleteMessage(channel: string, ts: string): void {
    const list = this.msgs.get(channel) ?? [];
    const idx = list.findIndex((x) => x.ts === ts);
    const m = list[idx];
    if (!m) return;
    if ((m.reply_count ?? 0) > 0) {
      // A parent with replies stays as a tombstone, as in Slack.
      m.subtype = 'tombstone';
      m.text = 'This message was deleted.';
      delete m.blocks;
      delete m.files;
    } else {
      list.splice(idx, 1);
      if (m.thread_ts && m.thread_ts !== m.ts) {
        const parent = list.find((p) => p.ts === m.thread_ts);
        if (parent) {
          parent.reply_count = Math.max(0, (parent.reply_count ?? 1) - 1);
          const replies = list.filter((r) => r.thread_ts === parent.ts && r.ts !== parent.ts);
          parent.latest_reply = replies.at(-1)?.ts ?? parent.ts;
        }
      }
    }
    this.changed({ type: 'message_deleted', channel, ts });
  }
}
