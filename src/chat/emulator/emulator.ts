// A Slack workspace on 127.0.0.1: the Web API (documented request/response shapes and errors), signed
// slash commands and interactivity sent to the bot over HTTP or Socket Mode, and a console page.
// Slack cannot be reached from the test machine; the real Bolt app runs against this instead.
import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import { signSlackRequest } from '../signature.ts';
import { LIMITS, normalizeBlocks, validateBlocks, validateView } from './blocks.ts';
import { consoleHtml } from './console-page.ts';
import { type SlackRateLimitOptions, SlackRateLimits } from './rate-limits.ts';
import type {
  ApiCall,
  Block,
  ChangeEvent,
  Delivery,
  DeliveryKind,
  EmulatorChannel,
  EmulatorUser,
  EphemeralMessage,
  Json,
  ResponseUrlPost,
  SlackFile,
  StoredMessage,
  StoredView,
} from './types.ts';

export interface SlackEmulatorOptions {
  /** Enforce Slack's Web API rate limits (rate-limits.ts): true for Slack's figures, or own ones. */
  rateLimits?: boolean | SlackRateLimitOptions;
  port?: number;
  host?: string;
  signingSecret: string;
  botToken: string;
  appToken?: string;
  /** Request URL for slash commands, interactivity and events (HTTP mode), e.g. http://127.0.0.1:3000/slack/events */
  botEventsUrl?: string;
  users?: EmulatorUser[];
  channels?: EmulatorChannel[];
  team?: { id: string; domain: string; name: string };
  bot?: { userId: string; botId: string; appId: string; name: string };
  /** Legacy verification token sent in payloads' `token` field. */
  verificationToken?: string;
  /** How long Slack waits for an ack (default 3000 ms). */
  ackTimeoutMs?: number;
  /** How long a trigger_id can be exchanged with views.open (Slack: 3 s). */
  triggerTtlMs?: number;
  /** Server ping interval on Socket Mode connections (default 10 s; Bolt times out after 30 s without one). */
  socketPingIntervalMs?: number;
  /** When the app uses Socket Mode and no connection is open, how long a delivery waits for one (default 10 s). */
  socketWaitMs?: number;
}

export interface InjectRule {
  /** Web API method (e.g. 'chat.postMessage'); all methods when omitted. */
  method?: string;
  /** 429 answers `{ok:false,error:'ratelimited'}` with Retry-After; 5xx answers an HTML error page. */
  status?: 429 | 500 | 502 | 503 | 504;
  /** Seconds, for 429 (default 1). */
  retryAfter?: number;
  /** How many calls this rule applies to. */
  times: number;
  /** Delay the answer by this long (slow Slack). */
  delayMs?: number;
}

export interface SlashCommandInput {
  userId: string;
  channelId: string;
  command?: string;
  text?: string;
  /** Sign with this secret instead of the real one (forged request). */
  signingSecret?: string;
  /** Request timestamp in seconds (stale requests). */
  timestamp?: number;
}

export interface ClickButtonInput {
  userId: string;
  channelId: string;
  messageTs: string;
  actionId: string;
  value?: string;
  blockId?: string;
  /** For a select menu: the chosen option's value. */
  selectedValue?: string;
  /** Sign with this secret instead of the real one (forged request). */
  signingSecret?: string;
  /** Request timestamp in seconds (stale or future-dated requests). */
  timestamp?: number;
}

export interface SubmitViewInput {
  userId: string;
  viewId: string;
  /** { [block_id or action_id]: value } or { [block_id]: { [action_id]: value } } */
  values?: Record<string, string | Record<string, string>>;
  /** Sign with this secret instead of the real one (forged request). */
  signingSecret?: string;
  /** Request timestamp in seconds (stale or future-dated requests). */
  timestamp?: number;
}

const DEFAULT_USERS: EmulatorUser[] = [
  { id: 'U_ALICE', name: 'alice', realName: 'Alice Developer', tz: 'Europe/Berlin' },
  { id: 'U_BOB', name: 'bob', realName: 'Bob Approver', tz: 'Europe/London' },
  { id: 'U_CAROL', name: 'carol', realName: 'Carol Admin', isAdmin: true, tz: 'America/New_York' },
  { id: 'U_DAVE', name: 'dave', realName: 'Dave Oncall', tz: 'Asia/Singapore' },
];

const DEFAULT_CHANNELS: EmulatorChannel[] = [
  { id: 'C_RELEASES', name: 'releases', purpose: 'Releases and approvals' },
  { id: 'C_PAYMENTS_ALERTS', name: 'payments-alerts', purpose: 'Alerts for the payments app' },
  { id: 'C_CHECKOUT_ALERTS', name: 'checkout-alerts', purpose: 'Alerts for the checkout app' },
  { id: 'C_GENERAL', name: 'general', purpose: 'Company-wide' },
  { id: 'C_RANDOM', name: 'random', botMember: false },
];

const SLACKBOT = 'USLACKBOT';

/** The signing overrides of an input (forged or mis-dated requests), without undefined keys. */
function signing(input: { signingSecret?: string; timestamp?: number }): {
  signingSecret?: string;
  timestamp?: number;
} {
  return {
    ...(input.signingSecret !== undefined ? { signingSecret: input.signingSecret } : {}),
    ...(input.timestamp !== undefined ? { timestamp: input.timestamp } : {}),
  };
}

class ApiError extends Error {
  readonly extra: Json;
  constructor(code: string, extra: Json = {}) {
    super(code);
    this.extra = extra;
  }
}

interface Trigger {
  user: string;
  channel?: string;
  created: number;
  used: boolean;
}

interface ResponseUrlState {
  kind: 'command' | 'action';
  channel: string;
  user: string;
  created: number;
  uses: number;
  messageTs?: string;
  ephemeral?: boolean;
  threadTs?: string;
}

interface PendingAck {
  resolve: (payload: Json | undefined) => void;
}

interface Conn {
  id: number;
  ws: WebSocket;
  opened: number;
  ping: NodeJS.Timeout;
}

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const rand = (n: number): string =>
  Array.from(randomBytes(n), (b) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'[b % 36]).join('');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const MIME: Record<string, [string, string, string]> = {
  txt: ['text/plain', 'text', 'Plain Text'],
  log: ['text/plain', 'text', 'Plain Text'],
  md: ['text/markdown', 'markdown', 'Markdown (raw)'],
  json: ['application/json', 'json', 'JSON'],
  yaml: ['text/yaml', 'yaml', 'YAML'],
  yml: ['text/yaml', 'yaml', 'YAML'],
  csv: ['text/csv', 'csv', 'CSV'],
  png: ['image/png', 'png', 'PNG'],
  jpg: ['image/jpeg', 'jpg', 'JPEG'],
  jpeg: ['image/jpeg', 'jpg', 'JPEG'],
  gif: ['image/gif', 'gif', 'GIF'],
  gz: ['application/gzip', 'gzip', 'GZip'],
  zip: ['application/zip', 'zip', 'Zip'],
  html: ['text/html', 'html', 'HTML'],
  pdf: ['application/pdf', 'pdf', 'PDF'],
};

function mimeFor(name: string, snippetType?: string): [string, string, string] {
  const ext = name.includes('.') ? (name.split('.').pop() ?? '').toLowerCase() : '';
  return (
    MIME[ext] ??
    (snippetType ? ['text/plain', snippetType, snippetType] : ['text/plain', 'text', 'Plain Text'])
  );
}

export class SlackEmulator extends EventEmitter {
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

  /** Every Web API call, in order. */
  readonly calls: ApiCall[] = [];
  /** Every delivery to the bot (slash commands, interactivity, events), in order. */
  readonly deliveries: Delivery[] = [];
  /** Everything POSTed to response_url's. */
  readonly responses: ResponseUrlPost[] = [];

  private server!: http.Server;
  private wss!: WebSocketServer;
  private baseUrl = '';
  private readonly users = new Map<string, EmulatorUser>();
  private readonly channels = new Map<string, EmulatorChannel & { created: number; isIm?: boolean }>();
  private readonly msgs = new Map<string, StoredMessage[]>();
  private readonly ephemeralList: EphemeralMessage[] = [];
  private readonly viewMap = new Map<string, StoredView>();
  private readonly modalStacks = new Map<string, string[]>();
  private readonly fileMap = new Map<string, SlackFile>();
  private readonly fileData = new Map<string, Buffer>();
  private readonly uploadTokens = new Map<string, string>();
  private readonly triggers = new Map<string, Trigger>();
  private readonly responseUrls = new Map<string, ResponseUrlState>();
  private readonly tickets = new Map<string, number>();
  private readonly conns: Conn[] = [];
  private readonly pending = new Map<string, PendingAck>();
  private readonly sse = new Set<http.ServerResponse>();
  private readonly rules: InjectRule[] = [];
  /** Slack's rate limits, when enforced (options.rateLimits). */
  readonly rateLimits: SlackRateLimits | undefined;
  private lastUs = 0;
  private connSeq = 0;
  /** Total Socket Mode connections accepted so far. */
  socketConnectionsOpened = 0;
  private socketEverConnected = false;

  private constructor(opts: SlackEmulatorOptions) {
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

  static async start(opts: SlackEmulatorOptions): Promise<SlackEmulator> {
    const emu = new SlackEmulator(opts);
    await emu.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
    return emu;
  }

  /** Base URL for SLACK_API_URL / clientOptions.slackApiUrl (ends with `/api/`). */
  get apiUrl(): string {
    return `${this.baseUrl}/api/`;
  }
  /** The console page. */
  get url(): string {
    return `${this.baseUrl}/`;
  }
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  private listen(port: number, host: string): Promise<void> {
    this.server = http.createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err instanceof Error ? err.stack : err));
      });
    });
    this.wss = new WebSocketServer({ noServer: true });
    this.server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const ticket = url.searchParams.get('ticket') ?? '';
      const issued = this.tickets.get(ticket);
      if (!url.pathname.startsWith('/link') || issued === undefined || Date.now() - issued > 60_000) {
        socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
        return;
      }
      this.tickets.delete(ticket);
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws));
    });
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        const a = this.server.address() as AddressInfo;
        this.baseUrl = `http://${host}:${a.port}`;
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    for (const c of [...this.conns]) {
      clearInterval(c.ping);
      c.ws.terminate();
    }
    this.conns.length = 0;
    for (const r of this.sse) r.end();
    this.sse.clear();
    for (const p of this.pending.values()) p.resolve(undefined);
    this.pending.clear();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
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
  get socketConnections(): number {
    return this.conns.length;
  }
  get lastDelivery(): Delivery | undefined {
    return this.deliveries.at(-1);
  }

  /** Resolves once at least `count` Socket Mode connections are open and greeted. */
  async waitForSocket(opts: { count?: number; opened?: number; timeoutMs?: number } = {}): Promise<void> {
    const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
    while (
      this.conns.length < (opts.count ?? 1) ||
      (opts.opened !== undefined && this.socketConnectionsOpened < opts.opened)
    ) {
      if (Date.now() > deadline)
        throw new Error(`no Socket Mode connection within ${opts.timeoutMs ?? 15_000} ms`);
      await sleep(20);
    }
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

  private changed(e: ChangeEvent): void {
    this.emit('change', e);
    const data = `data: ${JSON.stringify(e.type === 'delivery' ? { type: 'delivery', kind: e.delivery.kind, status: e.delivery.status, payloadType: e.delivery.payloadType, error: e.delivery.error } : e)}\n\n`;
    for (const r of this.sse) r.write(data);
  }

  /** Add a user or channel at runtime. */
  addUser(u: EmulatorUser): void {
    this.users.set(u.id, { ...u });
  }
  addChannel(c: EmulatorChannel): void {
    this.channels.set(c.id, { botMember: true, ...c, created: Math.floor(Date.now() / 1000) });
    if (!this.msgs.has(c.id)) this.msgs.set(c.id, []);
  }

  // ---------------------------------------------------------------- fault injection

  /** Inject rate limits (429 + Retry-After), 5xx answers and slow answers into the Web API. */
  inject(rule: InjectRule): void {
    this.rules.push({ ...rule });
  }
  clearInjections(): void {
    this.rules.length = 0;
  }

  // ---------------------------------------------------------------- helpers

  private nextTs(): string {
    let us = Date.now() * 1000;
    if (us <= this.lastUs) us = this.lastUs + 1;
    this.lastUs = us;
    return `${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, '0')}`;
  }

  private newTrigger(user: string, channel?: string): string {
    const id = `${Date.now()}${Math.floor(Math.random() * 1000)}.${Math.floor(Math.random() * 1e11)}.${randomBytes(16).toString('hex')}`;
    const t: Trigger = { user, created: Date.now(), used: false };
    if (channel !== undefined) t.channel = channel;
    this.triggers.set(id, t);
    return id;
  }

  private newResponseUrl(state: Omit<ResponseUrlState, 'created' | 'uses'>): string {
    const id = `${Math.floor(Math.random() * 1e12)}`;
    const secret = randomBytes(12).toString('base64url');
    const key = `${id}/${secret}`;
    this.responseUrls.set(key, { ...state, created: Date.now(), uses: 0 });
    return `${this.baseUrl}/${state.kind === 'command' ? 'commands' : 'actions'}/${this.team.id}/${key}`;
  }

  private resolveChannelId(ref: string): string | undefined {
    if (this.channels.has(ref)) return ref;
    const name = ref.replace(/^#/, '');
    for (const c of this.channels.values()) if (c.name === name && !c.isIm) return c.id;
    if (this.users.has(ref)) return this.imFor(ref);
    return undefined;
  }

  private imFor(userId: string): string {
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

  private userObj(id: string): Json {
    return {
      id,
      username: this.users.get(id)?.name ?? id,
      name: this.users.get(id)?.name ?? id,
      team_id: this.team.id,
    };
  }

  private channelOrThrow(ref: unknown): EmulatorChannel & { created: number; isIm?: boolean } {
    if (typeof ref !== 'string' || ref === '') throw new ApiError('channel_not_found');
    const id = this.resolveChannelId(ref);
    const ch = id ? this.channels.get(id) : undefined;
    if (!ch) throw new ApiError('channel_not_found');
    return ch;
  }

  private findMessage(channel: string, ts: string): StoredMessage | undefined {
    return this.msgs.get(channel)?.find((m) => m.ts === ts);
  }

  private botProfile(): Json {
    return {
      id: this.bot.botId,
      app_id: this.bot.appId,
      name: this.bot.name,
      deleted: false,
      team_id: this.team.id,
      icons: { image_36: '', image_48: '', image_72: '' },
    };
  }

  private publicMessage(m: StoredMessage): Json {
    const { channel: _c, history: _h, ...rest } = structuredClone(m);
    return rest as Json;
  }

  private parseBlocksArg(v: unknown): Block[] | undefined {
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

  private parseJsonArg(v: unknown, code = 'invalid_arguments'): unknown {
    if (typeof v !== 'string') return v;
    try {
      return JSON.parse(v);
    } catch {
      throw new ApiError(code);
    }
  }

  private checkBlocks(
    blocks: Block[] | undefined,
    surface: 'message' | 'modal' = 'message',
  ): Block[] | undefined {
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

  /** Adds a message to a channel (and the thread bookkeeping of its parent). */
  private storeMessage(m: StoredMessage): StoredMessage {
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

  private threadParent(channel: string, threadTs: unknown): string | undefined {
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

  private botMessage(channel: string, fields: Partial<StoredMessage>): StoredMessage {
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

  private userMessage(channel: string, user: string, text: string, threadTs?: string): StoredMessage {
    const m: StoredMessage = { type: 'message', channel, ts: this.nextTs(), user, text, team: this.team.id };
    if (threadTs) m.thread_ts = threadTs;
    return m;
  }

  private addEphemeral(e: Omit<EphemeralMessage, 'type' | 'ts'>): EphemeralMessage {
    const eph: EphemeralMessage = { type: 'message', ts: this.nextTs(), ...e };
    this.ephemeralList.push(eph);
    this.changed({ type: 'ephemeral', channel: e.channel, user: e.user, ts: eph.ts });
    return eph;
  }

  // ---------------------------------------------------------------- HTTP routing

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.baseUrl);
    const path = url.pathname;
    if (path.startsWith('/api/')) return this.handleApiHttp(req, res, url);
    if (path.startsWith('/upload/v1/')) return this.handleUpload(req, res, path);
    if (path.startsWith('/commands/') || path.startsWith('/actions/'))
      return this.handleResponseUrl(req, res, path);
    if (path.startsWith('/files/')) return this.handleFileDownload(res, path, url);
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(consoleHtml());
      return;
    }
    if (path.startsWith('/console/')) return this.handleConsole(req, res, url);
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  }

  private readBody(req: http.IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }

  private async parseArgs(req: http.IncomingMessage, url: URL, raw: Buffer): Promise<Json> {
    const args: Json = Object.fromEntries(url.searchParams);
    const ct = String(req.headers['content-type'] ?? '');
    if (raw.length === 0) return args;
    if (ct.includes('application/json')) {
      const parsed: unknown = JSON.parse(raw.toString('utf8'));
      if (isObj(parsed)) Object.assign(args, parsed);
    } else if (ct.includes('multipart/form-data')) {
      const form = await new Request('http://x/', {
        method: 'POST',
        headers: { 'content-type': ct },
        body: new Uint8Array(raw),
      }).formData();
      for (const [k, v] of form) args[k] = typeof v === 'string' ? v : Buffer.from(await v.arrayBuffer());
    } else {
      for (const [k, v] of new URLSearchParams(raw.toString('utf8'))) args[k] = v;
    }
    return args;
  }

  private async handleApiHttp(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const method = url.pathname.slice('/api/'.length);
    const raw = await this.readBody(req);
    let args: Json;
    try {
      args = await this.parseArgs(req, url, raw);
    } catch {
      args = {};
    }
    const auth = String(req.headers['authorization'] ?? '');
    const token = auth.startsWith('Bearer ')
      ? auth.slice(7)
      : typeof args['token'] === 'string'
        ? args['token']
        : undefined;
    const { token: _t, ...argsNoToken } = args;
    const time = Date.now();

    const rule = this.rules.find((r) => r.times > 0 && (r.method === undefined || r.method === method));
    const retryAfter = rule ? undefined : this.rateLimits?.check(method, args, time);
    if (retryAfter !== undefined) {
      const body = { ok: false, error: 'ratelimited' };
      this.calls.push({
        method,
        args: argsNoToken,
        token,
        time,
        status: 429,
        response: body,
        injected: 'ratelimited',
      });
      res.writeHead(429, {
        'content-type': 'application/json; charset=utf-8',
        'retry-after': String(retryAfter),
      });
      res.end(JSON.stringify(body));
      return;
    }
    if (rule) {
      rule.times -= 1;
      if (rule.delayMs) await sleep(rule.delayMs);
      if (rule.status === 429) {
        const retryAfter = rule.retryAfter ?? 1;
        const body = { ok: false, error: 'ratelimited' };
        this.calls.push({
          method,
          args: argsNoToken,
          token,
          time,
          status: 429,
          response: body,
          injected: 'ratelimited',
        });
        res.writeHead(429, {
          'content-type': 'application/json; charset=utf-8',
          'retry-after': String(retryAfter),
        });
        res.end(JSON.stringify(body));
        return;
      }
      if (rule.status !== undefined) {
        const body = { error: `HTTP ${rule.status}` };
        this.calls.push({
          method,
          args: argsNoToken,
          token,
          time,
          status: rule.status,
          response: body,
          injected: 'error',
        });
        res.writeHead(rule.status, { 'content-type': 'text/html' });
        res.end(`<html><body><h1>${rule.status}</h1>Slack is having trouble.</body></html>`);
        return;
      }
    }

    const response = this.callMethod(method, args, token);
    const call: ApiCall = { method, args: argsNoToken, token, time, status: 200, response };
    if (rule?.delayMs) call.injected = 'delay';
    this.calls.push(call);
    this.changed({ type: 'api_call', method, ok: response['ok'] === true });
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'x-oauth-scopes': 'chat:write,commands,files:write,users:read,channels:read,groups:read,im:write',
    });
    res.end(JSON.stringify(response));
  }

  /** Runs a Web API method against the workspace state (also usable without HTTP). */
  callMethod(method: string, args: Json, token: string | undefined): Json {
    try {
      const kind = this.authenticate(method, token);
      const handler = this.methods[method];
      if (!handler) throw new ApiError('unknown_method');
      if (kind === 'app' && method !== 'apps.connections.open') throw new ApiError('not_allowed_token_type');
      if (kind === 'bot' && method === 'apps.connections.open') throw new ApiError('not_allowed_token_type');
      return { ok: true, ...handler(args) };
    } catch (err) {
      if (err instanceof ApiError) return { ok: false, error: err.message, ...err.extra };
      throw err;
    }
  }

  private authenticate(method: string, token: string | undefined): 'bot' | 'app' | 'none' {
    if (method === 'api.test') return 'none';
    if (!token) throw new ApiError('not_authed');
    if (token === this.botToken) return 'bot';
    if (this.appToken !== undefined && token === this.appToken) return 'app';
    throw new ApiError('invalid_auth');
  }

  // ---------------------------------------------------------------- Web API methods

  private readonly methods: Record<string, (a: Json) => Json> = {
    'api.test': (a) => ({ args: a }),
    'auth.test': () => ({
      url: `${this.baseUrl}/`,
      team: this.team.name,
      user: this.bot.name,
      team_id: this.team.id,
      user_id: this.bot.userId,
      bot_id: this.bot.botId,
      is_enterprise_install: false,
    }),
    'apps.connections.open': () => {
      const ticket = randomUUID();
      this.tickets.set(ticket, Date.now());
      const wsBase = this.baseUrl.replace(/^http/, 'ws');
      return { url: `${wsBase}/link/?ticket=${ticket}&app_id=${this.bot.appId}` };
    },
    'users.info': (a) => {
      const u = this.users.get(String(a['user'] ?? ''));
      if (!u) throw new ApiError('user_not_found');
      return { user: this.userInfo(u) };
    },
    'users.list': () => ({
      members: [...this.users.values()].map((u) => this.userInfo(u)),
      response_metadata: { next_cursor: '' },
    }),
    'conversations.info': (a) => ({ channel: this.channelInfo(this.channelOrThrow(a['channel'])) }),
    'conversations.list': () => ({
      channels: [...this.channels.values()].filter((c) => !c.isIm).map((c) => this.channelInfo(c)),
      response_metadata: { next_cursor: '' },
    }),
    'conversations.join': (a) => {
      const ch = this.channelOrThrow(a['channel']);
      ch.botMember = true;
      return { channel: this.channelInfo(ch) };
    },
    'conversations.open': (a) => {
      const users = String(a['users'] ?? '')
        .split(',')
        .filter(Boolean);
      const first = users[0];
      if (!first || !this.users.has(first)) throw new ApiError('user_not_found');
      const ch = this.channels.get(this.imFor(first));
      return { channel: { id: ch?.id } };
    },
    'conversations.history': (a) => {
      const ch = this.channelOrThrow(a['channel']);
      const limit = Number(a['limit'] ?? 100);
      const msgs = this.channelMessages(ch.id)
        .reverse()
        .filter((m) => (a['oldest'] ? Number(m.ts) >= Number(a['oldest']) : true))
        .filter((m) => (a['latest'] ? Number(m.ts) <= Number(a['latest']) : true));
      return {
        messages: msgs.slice(0, limit).map((m) => this.publicMessage(m)),
        has_more: msgs.length > limit,
        response_metadata: { next_cursor: '' },
      };
    },
    'conversations.replies': (a) => {
      const ch = this.channelOrThrow(a['channel']);
      const ts = String(a['ts'] ?? '');
      const parent = this.findMessage(ch.id, ts);
      if (!parent) throw new ApiError('thread_not_found');
      const root = parent.thread_ts ?? parent.ts;
      return {
        messages: this.thread(ch.id, root).map((m) => this.publicMessage(m)),
        has_more: false,
        response_metadata: { next_cursor: '' },
      };
    },
    'chat.postMessage': (a) => this.postMessage(a),
    'chat.update': (a) => this.updateMessage(a),
    'chat.delete': (a) => {
      const ch = this.channelOrThrow(a['channel']);
      const ts = String(a['ts'] ?? '');
      const list = this.msgs.get(ch.id) ?? [];
      const m = list.find((x) => x.ts === ts);
      if (!m) throw new ApiError('message_not_found');
      if (m.user !== this.bot.userId) throw new ApiError('cant_delete_message');
      this.deleteMessage(ch.id, ts);
      return { channel: ch.id, ts };
    },
    'chat.postEphemeral': (a) => {
      const ch = this.channelOrThrow(a['channel']);
      const user = String(a['user'] ?? '');
      if (!this.users.has(user)) throw new ApiError('user_not_found');
      const text = a['text'] === undefined ? '' : String(a['text']);
      const blocks = this.checkBlocks(this.parseBlocksArg(a['blocks']));
      if (!text && !blocks && !a['attachments']) throw new ApiError('no_text');
      if (text.length > LIMITS.messageText) throw new ApiError('msg_too_long');
      const e: Omit<EphemeralMessage, 'type' | 'ts'> = {
        channel: ch.id,
        user,
        from: this.bot.userId,
        text,
        source: 'chat.postEphemeral',
      };
      if (blocks) e.blocks = blocks;
      const threadTs = this.threadParent(ch.id, a['thread_ts']);
      if (threadTs) e.thread_ts = threadTs;
      return { message_ts: this.addEphemeral(e).ts };
    },
    'chat.getPermalink': (a) => {
      const ch = this.channelOrThrow(a['channel']);
      const ts = String(a['message_ts'] ?? '');
      if (!this.findMessage(ch.id, ts)) throw new ApiError('message_not_found');
      return { channel: ch.id, permalink: `${this.baseUrl}/archives/${ch.id}/p${ts.replace('.', '')}` };
    },
    'views.open': (a) => this.viewsOpen(a, false),
    'views.push': (a) => this.viewsOpen(a, true),
    'views.update': (a) => this.viewsUpdate(a),
    'files.getUploadURLExternal': (a) => {
      const filename = a['filename'];
      const length = Number(a['length']);
      if (typeof filename !== 'string' || filename === '' || !Number.isFinite(length) || length < 0) {
        throw new ApiError('invalid_arguments', {
          response_metadata: { messages: ['[ERROR] missing required field: filename or length'] },
        });
      }
      const id = `F${rand(10)}`;
      const [mimetype, filetype, pretty] = mimeFor(
        filename,
        typeof a['snippet_type'] === 'string' ? a['snippet_type'] : undefined,
      );
      const f: SlackFile = {
        id,
        name: filename,
        title: filename,
        mimetype,
        filetype,
        pretty_type: pretty,
        user: this.bot.userId,
        size: length,
        created: Math.floor(Date.now() / 1000),
        url_private: `${this.baseUrl}/files/${id}/${encodeURIComponent(filename)}`,
        url_private_download: `${this.baseUrl}/files/${id}/${encodeURIComponent(filename)}?download=1`,
        permalink: `${this.baseUrl}/files/${id}/${encodeURIComponent(filename)}`,
        channels: [],
        shares: {},
        uploaded: false,
        completed: false,
      };
      if (typeof a['alt_txt'] === 'string') f.alt_txt = a['alt_txt'];
      this.fileMap.set(id, f);
      const tok = randomBytes(16).toString('base64url');
      this.uploadTokens.set(tok, id);
      return { upload_url: `${this.baseUrl}/upload/v1/${tok}`, file_id: id };
    },
    'files.completeUploadExternal': (a) => this.completeUpload(a),
    'files.info': (a) => {
      const f = this.fileMap.get(String(a['file'] ?? ''));
      if (!f?.completed) throw new ApiError('file_not_found');
      return { file: this.publicFile(f) };
    },
  };

  private userInfo(u: EmulatorUser): Json {
    return {
      id: u.id,
      team_id: this.team.id,
      name: u.name,
      deleted: false,
      real_name: u.realName,
      tz: u.tz ?? 'UTC',
      is_admin: u.isAdmin ?? false,
      is_owner: false,
      is_bot: u.isBot ?? false,
      is_app_user: false,
      profile: {
        real_name: u.realName,
        display_name: u.name,
        real_name_normalized: u.realName,
        display_name_normalized: u.name,
        email: u.email ?? `${u.name}@${this.team.domain}.example`,
        team: this.team.id,
        ...(u.isBot ? { bot_id: this.bot.botId } : {}),
      },
    };
  }

  private channelInfo(c: EmulatorChannel & { created: number; isIm?: boolean }): Json {
    if (c.isIm)
      return { id: c.id, is_im: true, user: c.id.slice(2), created: c.created, is_org_shared: false };
    return {
      id: c.id,
      name: c.name,
      is_channel: !c.isPrivate,
      is_group: false,
      is_im: false,
      is_private: c.isPrivate ?? false,
      is_archived: false,
      is_general: c.name === 'general',
      is_member: c.botMember ?? true,
      created: c.created,
      creator: 'U_CAROL',
      name_normalized: c.name,
      topic: { value: c.topic ?? '', creator: '', last_set: 0 },
      purpose: { value: c.purpose ?? '', creator: '', last_set: 0 },
      num_members: this.users.size,
    };
  }

  private postMessage(a: Json): Json {
    const ch = this.channelOrThrow(a['channel']);
    if (ch.botMember === false) throw new ApiError('not_in_channel');
    let text = a['text'] === undefined || a['text'] === null ? '' : String(a['text']);
    const blocks = this.checkBlocks(this.parseBlocksArg(a['blocks']));
    const attachments = a['attachments'] ? (this.parseJsonArg(a['attachments']) as Json[]) : undefined;
    if (!text && !blocks && !attachments) throw new ApiError('no_text');
    const threadTs = this.threadParent(ch.id, a['thread_ts']);
    const out: Json = {};
    if (text.length > LIMITS.messageText) {
      // Documented: "Slack will truncate messages containing more than 40,000 characters."
      text = text.slice(0, LIMITS.messageText);
      out['warning'] = 'message_truncated';
      out['response_metadata'] = { warnings: ['message_truncated'] };
    }
    const m = this.botMessage(ch.id, { text });
    if (blocks) m.blocks = blocks;
    if (attachments) m.attachments = attachments;
    if (threadTs) m.thread_ts = threadTs;
    if (threadTs && (a['reply_broadcast'] === true || a['reply_broadcast'] === 'true'))
      m.subtype = 'thread_broadcast';
    if (typeof a['username'] === 'string') m.username = a['username'];
    if (a['metadata']) m.metadata = this.parseJsonArg(a['metadata']) as Json;
    this.storeMessage(m);
    return { channel: ch.id, ts: m.ts, message: this.publicMessage(m), ...out };
  }

  private updateMessage(a: Json): Json {
    const ch = this.channelOrThrow(a['channel']);
    const ts = String(a['ts'] ?? '');
    const m = this.findMessage(ch.id, ts);
    if (!m) throw new ApiError('message_not_found');
    if (m.user !== this.bot.userId) throw new ApiError('cant_update_message');
    const blocks = this.checkBlocks(this.parseBlocksArg(a['blocks']));
    const hasText = a['text'] !== undefined && a['text'] !== null;
    const text = hasText ? String(a['text']) : undefined;
    if (text === '' && blocks === undefined && !a['attachments'] && !a['file_ids'])
      throw new ApiError('no_text');
    if (text !== undefined && text.length > LIMITS.messageText) throw new ApiError('msg_too_long');
    m.history = [
      ...(m.history ?? []),
      { ts: this.nextTs(), text: m.text, ...(m.blocks ? { blocks: m.blocks } : {}) },
    ];
    if (text !== undefined) m.text = text;
    // Documented: blocks not given are retained; an empty array removes them.
    if (blocks !== undefined) {
      if (blocks.length === 0) delete m.blocks;
      else m.blocks = blocks;
    }
    if (a['attachments']) m.attachments = this.parseJsonArg(a['attachments']) as Json[];
    m.edited = { user: this.bot.userId, ts: this.nextTs() };
    this.changed({ type: 'message_changed', channel: ch.id, ts });
    return { channel: ch.id, ts, text: m.text, message: this.publicMessage(m) };
  }

  private deleteMessage(channel: string, ts: string): void {
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

  private viewsOpen(a: Json, push: boolean): Json {
    const triggerId = String(a['trigger_id'] ?? a['interactivity_pointer'] ?? '');
    const trig = this.triggers.get(triggerId);
    if (!trig) throw new ApiError('invalid_trigger_id');
    if (trig.used) throw new ApiError('exchanged_trigger_id');
    if (Date.now() - trig.created > this.triggerTtlMs) throw new ApiError('expired_trigger_id');
    const view = this.parseJsonArg(a['view']) as Json;
    const errors = validateView(view);
    if (errors.length > 0) {
      throw new ApiError('invalid_arguments', {
        response_metadata: { messages: errors.map((e) => `[ERROR] ${e}`) },
      });
    }
    if (
      typeof view['external_id'] === 'string' &&
      view['external_id'] !== '' &&
      [...this.viewMap.values()].some((x) => x.open && x.external_id === view['external_id'])
    ) {
      throw new ApiError('duplicate_external_id');
    }
    const stack = this.modalStacks.get(trig.user) ?? [];
    if (push) {
      if (stack.length === 0) throw new ApiError('not_found');
      if (stack.length >= 3) throw new ApiError('push_limit_reached');
    } else {
      for (const id of stack) {
        const v = this.viewMap.get(id);
        if (v) v.open = false;
      }
      stack.length = 0;
    }
    trig.used = true;
    const v = this.makeView(
      view,
      trig.user,
      push ? (stack[0] ?? null) : null,
      push ? (stack.at(-1) ?? null) : null,
      push ? 'views.push' : 'views.open',
    );
    stack.push(v.id);
    this.modalStacks.set(trig.user, stack);
    this.changed({ type: 'view_opened', viewId: v.id, user: v.user });
    return { view: this.publicView(v) };
  }

  private makeView(
    view: Json,
    user: string,
    rootId: string | null,
    previous: string | null,
    openedBy: string,
  ): StoredView {
    const id = `V${rand(10)}`;
    const v: StoredView = {
      id,
      team_id: this.team.id,
      type: view['type'] === 'home' ? 'home' : 'modal',
      blocks: normalizeBlocks((view['blocks'] as Block[] | undefined) ?? []),
      private_metadata: String(view['private_metadata'] ?? ''),
      callback_id: String(view['callback_id'] ?? ''),
      external_id: String(view['external_id'] ?? ''),
      state: { values: {} },
      hash: `${Math.floor(Date.now() / 1000)}.${rand(8)}`,
      clear_on_close: view['clear_on_close'] === true,
      notify_on_close: view['notify_on_close'] === true,
      root_view_id: rootId ?? id,
      previous_view_id: previous,
      app_id: this.bot.appId,
      bot_id: this.bot.botId,
      user,
      open: true,
      openedBy,
    };
    if (isObj(view['title'])) v.title = view['title'];
    if (isObj(view['submit'])) v.submit = view['submit'];
    if (isObj(view['close'])) v.close = view['close'];
    this.viewMap.set(id, v);
    return v;
  }

  private publicView(v: StoredView): Json {
    const { user: _u, open: _o, errors: _e, openedBy: _b, ...rest } = structuredClone(v);
    return { ...rest, app_installed_team_id: this.team.id };
  }

  private viewsUpdate(a: Json): Json {
    let v: StoredView | undefined;
    if (a['view_id']) v = this.viewMap.get(String(a['view_id']));
    else if (a['external_id']) v = [...this.viewMap.values()].find((x) => x.external_id === a['external_id']);
    if (!v) throw new ApiError('not_found');
    if (a['hash'] && a['hash'] !== v.hash) throw new ApiError('hash_conflict');
    const view = this.parseJsonArg(a['view']) as Json;
    const errors = validateView(view);
    if (errors.length > 0) {
      throw new ApiError('invalid_arguments', {
        response_metadata: { messages: errors.map((e) => `[ERROR] ${e}`) },
      });
    }
    this.replaceView(v, view);
    return { view: this.publicView(v) };
  }

  private replaceView(v: StoredView, view: Json): void {
    v.blocks = normalizeBlocks((view['blocks'] as Block[] | undefined) ?? []);
    if (isObj(view['title'])) v.title = view['title'];
    if (isObj(view['submit'])) v.submit = view['submit'];
    else delete v.submit;
    if (isObj(view['close'])) v.close = view['close'];
    v.private_metadata = String(view['private_metadata'] ?? '');
    v.callback_id = String(view['callback_id'] ?? v.callback_id);
    if (view['external_id']) v.external_id = String(view['external_id']);
    v.hash = `${Math.floor(Date.now() / 1000)}.${rand(8)}`;
    delete v.errors;
    this.changed({ type: 'view_updated', viewId: v.id, user: v.user });
  }

  private closeViews(user: string, all: boolean): void {
    const stack = this.modalStacks.get(user) ?? [];
    const toClose = all ? stack.splice(0) : stack.splice(-1);
    for (const id of toClose) {
      const v = this.viewMap.get(id);
      if (v) {
        v.open = false;
        this.changed({ type: 'view_closed', viewId: id, user });
      }
    }
  }

  private publicFile(f: SlackFile): Json {
    const { uploaded: _u, completed: _c, preview, ...rest } = structuredClone(f);
    const shares: Json = { public: {} as Json, private: {} as Json };
    for (const [ch, list] of Object.entries(f.shares)) {
      const c = this.channels.get(ch);
      const bucket = (c?.isPrivate || c?.isIm ? shares['private'] : shares['public']) as Json;
      bucket[ch] = list.map((s) => ({ ...s, channel_name: c?.name ?? ch, team_id: this.team.id }));
    }
    return {
      ...rest,
      ...(preview !== undefined ? { preview } : {}),
      shares,
      is_public: true,
      mode: 'hosted',
    };
  }

  private completeUpload(a: Json): Json {
    const list = this.parseJsonArg(a['files']);
    if (!Array.isArray(list) || list.length === 0) {
      throw new ApiError('invalid_arguments', {
        response_metadata: { messages: ['[ERROR] missing required field: files'] },
      });
    }
    const files: SlackFile[] = [];
    for (const item of list) {
      const f = isObj(item) ? this.fileMap.get(String(item['id'])) : undefined;
      if (!f) throw new ApiError('file_not_found');
      if (!f.uploaded) throw new ApiError('file_upload_not_completed' as string);
      if (isObj(item) && typeof item['title'] === 'string' && item['title'] !== '') f.title = item['title'];
      files.push(f);
    }
    const chRef =
      a['channel_id'] ?? (typeof a['channels'] === 'string' ? a['channels'].split(',')[0] : undefined);
    for (const f of files) f.completed = true;
    if (chRef) {
      const ch = this.channelOrThrow(chRef);
      if (ch.botMember === false) throw new ApiError('not_in_channel');
      const threadTs = this.threadParent(ch.id, a['thread_ts']);
      const blocks = this.checkBlocks(this.parseBlocksArg(a['blocks']));
      const m = this.botMessage(ch.id, {
        text: a['initial_comment'] ? String(a['initial_comment']) : '',
        upload: true,
      });
      if (blocks) m.blocks = blocks;
      if (threadTs) m.thread_ts = threadTs;
      for (const f of files) {
        f.channels = [...new Set([...f.channels, ch.id])];
        const share: { ts: string; thread_ts?: string } = { ts: m.ts };
        if (threadTs) share.thread_ts = threadTs;
        f.shares[ch.id] = [...(f.shares[ch.id] ?? []), share];
      }
      m.files = files.map((f) => {
        const { uploaded: _u, completed: _c, ...rest } = structuredClone(f);
        return { ...rest, uploaded: true, completed: true };
      });
      this.storeMessage(m);
    }
    for (const f of files) this.changed({ type: 'file', fileId: f.id });
    return { files: files.map((f) => ({ id: f.id, title: f.title })) };
  }

  private async handleUpload(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    path: string,
  ): Promise<void> {
    const tok = path.slice('/upload/v1/'.length);
    const id = this.uploadTokens.get(tok);
    const f = id ? this.fileMap.get(id) : undefined;
    const raw = await this.readBody(req);
    if (!f || req.method !== 'POST') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('invalid upload url');
      return;
    }
    let data = raw;
    const ct = String(req.headers['content-type'] ?? '');
    if (ct.includes('multipart/form-data')) {
      const form = await new Request('http://x/', {
        method: 'POST',
        headers: { 'content-type': ct },
        body: new Uint8Array(raw),
      }).formData();
      for (const [, v] of form) {
        if (typeof v !== 'string') {
          data = Buffer.from(await v.arrayBuffer());
          break;
        }
        data = Buffer.from(v);
      }
    }
    this.fileData.set(f.id, data);
    f.size = data.length;
    f.uploaded = true;
    if (f.mimetype.startsWith('text/') || f.mimetype === 'application/json') {
      f.preview = data.toString('utf8').slice(0, 2000);
    }
    this.uploadTokens.delete(tok);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`OK - ${data.length}`);
  }

  private handleFileDownload(res: http.ServerResponse, path: string, url: URL): void {
    const id = path.split('/')[2] ?? '';
    const f = this.fileMap.get(id);
    const data = this.fileData.get(id);
    if (!f || !data) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('file_not_found');
      return;
    }
    const headers: Record<string, string> = {
      'content-type': f.mimetype,
      'content-length': String(data.length),
    };
    if (url.searchParams.has('download')) headers['content-disposition'] = `attachment; filename="${f.name}"`;
    res.writeHead(200, headers);
    res.end(data);
  }

  // ---------------------------------------------------------------- response_url

  private async handleResponseUrl(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    path: string,
  ): Promise<void> {
    const parts = path.split('/');
    const kind = parts[1] === 'commands' ? 'command' : 'action';
    const key = parts.slice(3).join('/');
    const raw = await this.readBody(req);
    let body: Json = {};
    try {
      const ct = String(req.headers['content-type'] ?? '');
      if (ct.includes('json')) body = JSON.parse(raw.toString('utf8')) as Json;
      else body = { text: raw.toString('utf8') };
    } catch {
      body = { text: raw.toString('utf8') };
    }
    const st = this.responseUrls.get(key);
    const fullUrl = `${this.baseUrl}${path}`;
    const reply = (status: number, result: string): void => {
      this.responses.push({ url: fullUrl, kind, body, status, result, time: Date.now() });
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(result);
    };
    if (!st) return reply(404, 'no_service');
    if (Date.now() - st.created > 30 * 60_000) return reply(404, 'expired_url');
    if (st.uses >= 5) return reply(404, 'used_url');
    st.uses += 1;
    const result = this.applyResponse(st, body);
    reply(result === 'ok' ? 200 : 400, result);
  }

  /** Applies a message body sent to a response_url (or returned in an ack) the way Slack shows it. */
  private applyResponse(st: Omit<ResponseUrlState, 'created' | 'uses'>, body: Json): string {
    let blocks: Block[] | undefined;
    try {
      blocks = this.checkBlocks(this.parseBlocksArg(body['blocks']));
    } catch (err) {
      return err instanceof ApiError ? err.message : 'invalid_blocks';
    }
    const text = body['text'] === undefined ? '' : String(body['text']);
    const truthy = (v: unknown): boolean => v === true || v === 'true';
    if (truthy(body['delete_original'])) {
      if (st.ephemeral) {
        const e = this.ephemeralList.find((x) => x.ts === st.messageTs && x.user === st.user);
        if (e) {
          e.deleted = true;
          this.changed({ type: 'ephemeral', channel: e.channel, user: e.user, ts: e.ts });
        }
      } else if (st.messageTs) this.deleteMessage(st.channel, st.messageTs);
      return 'ok';
    }
    if (truthy(body['replace_original']) && st.messageTs) {
      if (st.ephemeral) {
        const e = this.ephemeralList.find((x) => x.ts === st.messageTs && x.user === st.user);
        if (!e) return 'message_not_found';
        e.text = text;
        if (blocks) e.blocks = blocks;
        else delete e.blocks;
        this.changed({ type: 'ephemeral', channel: e.channel, user: e.user, ts: e.ts });
        return 'ok';
      }
      const m = this.findMessage(st.channel, st.messageTs);
      if (!m) return 'message_not_found';
      m.history = [
        ...(m.history ?? []),
        { ts: this.nextTs(), text: m.text, ...(m.blocks ? { blocks: m.blocks } : {}) },
      ];
      m.text = text;
      if (blocks) m.blocks = blocks;
      else delete m.blocks;
      this.changed({ type: 'message_changed', channel: st.channel, ts: m.ts });
      return 'ok';
    }
    if (!text && !blocks) return 'no_text';
    let threadTs = typeof body['thread_ts'] === 'string' ? body['thread_ts'] : st.threadTs;
    if (threadTs && !this.findMessage(st.channel, threadTs)) threadTs = undefined;
    if (body['response_type'] === 'in_channel') {
      const m = this.botMessage(st.channel, { text });
      if (blocks) m.blocks = blocks;
      if (threadTs) m.thread_ts = threadTs;
      this.storeMessage(m);
    } else {
      const e: Omit<EphemeralMessage, 'type' | 'ts'> = {
        channel: st.channel,
        user: st.user,
        from: this.bot.userId,
        text,
        source: 'response_url',
      };
      if (blocks) e.blocks = blocks;
      if (threadTs) e.thread_ts = threadTs;
      this.addEphemeral(e);
    }
    return 'ok';
  }

  // ---------------------------------------------------------------- Socket Mode

  private onSocket(ws: WebSocket): void {
    const conn: Conn = {
      id: ++this.connSeq,
      ws,
      opened: Date.now(),
      ping: setInterval(() => {
        if (ws.readyState === ws.OPEN) ws.ping(Buffer.from(`ping-${Date.now()}`));
      }, this.socketPingIntervalMs),
    };
    this.conns.push(conn);
    this.socketConnectionsOpened += 1;
    this.socketEverConnected = true;
    ws.on('message', (data) => {
      let msg: unknown;
      try {
        msg = JSON.parse(String(data));
      } catch {
        return;
      }
      if (isObj(msg) && typeof msg['envelope_id'] === 'string') {
        const p = this.pending.get(msg['envelope_id']);
        if (p) {
          this.pending.delete(msg['envelope_id']);
          p.resolve(isObj(msg['payload']) ? msg['payload'] : {});
        }
      }
    });
    const gone = (): void => {
      clearInterval(conn.ping);
      const i = this.conns.indexOf(conn);
      if (i >= 0) {
        this.conns.splice(i, 1);
        this.changed({ type: 'socket', connected: this.conns.length, reason: 'closed' });
      }
    };
    ws.on('close', gone);
    ws.on('error', gone);
    ws.send(
      JSON.stringify({
        type: 'hello',
        num_connections: this.conns.length,
        debug_info: { host: 'applink-emulator', build_number: 1, approximate_connection_time: 18060 },
        connection_info: { app_id: this.bot.appId },
      }),
    );
    this.changed({ type: 'socket', connected: this.conns.length, reason: 'hello' });
  }

  /**
   * Sends `{type:'disconnect', reason}` on every open connection, as Slack does before recycling a
   * connection; closes the socket itself after `graceMs` if the client has not.
   */
  socketDisconnect(
    reason: 'refresh_requested' | 'warning' | 'link_disabled' = 'refresh_requested',
    graceMs = 2000,
  ): void {
    for (const c of [...this.conns]) {
      c.ws.send(JSON.stringify({ type: 'disconnect', reason, debug_info: { host: 'applink-emulator' } }));
      if (reason !== 'warning') {
        setTimeout(() => {
          if (c.ws.readyState === c.ws.OPEN) c.ws.close(1001, reason);
        }, graceMs).unref();
      }
    }
  }

  /** Drops every Socket Mode connection abruptly (no close frame), like a network failure. */
  socketDrop(): void {
    for (const c of [...this.conns]) c.ws.terminate();
  }

  private async pickConnection(): Promise<Conn | undefined> {
    const deadline = Date.now() + (this.botEventsUrl ? 0 : this.socketWaitMs);
    for (;;) {
      const open = this.conns.filter((c) => c.ws.readyState === c.ws.OPEN);
      if (open.length > 0) return open.at(-1);
      if (!this.socketEverConnected || Date.now() >= deadline) return undefined;
      await sleep(25);
    }
  }

  // ---------------------------------------------------------------- deliveries to the bot

  private async deliver(
    kind: DeliveryKind,
    payloadType: string,
    payload: Json,
    opts: { retryNum?: number; retryReason?: string; signingSecret?: string; timestamp?: number } = {},
  ): Promise<Delivery> {
    const retryNum = opts.retryNum ?? 0;
    const conn = this.socketEverConnected || !this.botEventsUrl ? await this.pickConnection() : undefined;
    const started = performance.now();
    const base = { id: randomUUID(), kind, payloadType, payload, retryNum, time: Date.now() };
    let d: Delivery;
    if (conn) {
      const envelopeId = randomUUID();
      const envelope: Json = {
        envelope_id: envelopeId,
        payload,
        type: kind,
        accepts_response_payload: kind === 'slash_commands' || payloadType === 'view_submission',
        retry_attempt: retryNum,
        retry_reason: opts.retryReason ?? '',
      };
      const rawBody = JSON.stringify(envelope);
      const ack = await new Promise<Json | undefined>((resolve) => {
        const timer = setTimeout(() => {
          this.pending.delete(envelopeId);
          resolve(undefined);
        }, this.ackTimeoutMs);
        this.pending.set(envelopeId, {
          resolve: (p) => {
            clearTimeout(timer);
            resolve(p);
          },
        });
        conn.ws.send(rawBody);
      });
      const acked = ack !== undefined;
      d = {
        ...base,
        via: 'socket',
        rawBody,
        envelopeId,
        status: acked ? 200 : 0,
        body: acked ? JSON.stringify(ack) : '',
        response: acked && Object.keys(ack).length > 0 ? ack : undefined,
        acked,
        timedOut: !acked,
        latencyMs: performance.now() - started,
      };
      if (opts.retryReason) d.retryReason = opts.retryReason;
      if (!acked) d.error = 'operation_timeout';
    } else if (this.botEventsUrl) {
      const rawBody =
        kind === 'events_api'
          ? JSON.stringify(payload)
          : kind === 'slash_commands'
            ? new URLSearchParams(payload as Record<string, string>).toString()
            : new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
      d = await this.httpDeliver(
        base,
        rawBody,
        kind === 'events_api' ? 'application/json' : 'application/x-www-form-urlencoded',
        opts,
      );
    } else {
      d = {
        ...base,
        via: 'socket',
        rawBody: '',
        status: 0,
        body: '',
        response: undefined,
        acked: false,
        timedOut: false,
        latencyMs: 0,
        error: 'dispatch_failed',
      };
    }
    this.deliveries.push(d);
    this.changed({ type: 'delivery', delivery: d });
    return d;
  }

  private async httpDeliver(
    base: Pick<Delivery, 'id' | 'kind' | 'payloadType' | 'payload' | 'retryNum' | 'time'>,
    rawBody: string,
    contentType: string,
    opts: { retryReason?: string; signingSecret?: string; timestamp?: number },
  ): Promise<Delivery> {
    const url = this.botEventsUrl ?? '';
    const ts = opts.timestamp ?? Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      'content-type': contentType,
      'user-agent': 'Slackbot 1.0 (+https://api.slack.com/robots)',
      'x-slack-request-timestamp': String(ts),
      'x-slack-signature': signSlackRequest(opts.signingSecret ?? this.signingSecret, ts, rawBody),
    };
    if (base.retryNum > 0) {
      headers['x-slack-retry-num'] = String(base.retryNum);
      headers['x-slack-retry-reason'] = opts.retryReason ?? 'http_timeout';
    }
    const started = performance.now();
    const d: Delivery = {
      ...base,
      via: 'http',
      url,
      rawBody,
      status: 0,
      body: '',
      response: undefined,
      acked: false,
      timedOut: false,
      latencyMs: 0,
    };
    if (opts.retryReason) d.retryReason = opts.retryReason;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers,
        body: rawBody,
        signal: AbortSignal.timeout(this.ackTimeoutMs),
      });
      d.status = res.status;
      d.body = await res.text();
      d.acked = res.status >= 200 && res.status < 300;
      if (d.body) {
        try {
          d.response = JSON.parse(d.body);
        } catch {
          d.response = d.body;
        }
      }
      if (!d.acked) d.error = 'http_service_error';
    } catch (err) {
      const name = err instanceof Error ? err.name : '';
      d.timedOut = name === 'TimeoutError' || name === 'AbortError';
      d.error = d.timedOut ? 'operation_timeout' : 'dispatch_failed';
    }
    d.latencyMs = performance.now() - started;
    return d;
  }

  /**
   * A user runs a slash command: Slack sends the signed form to the bot (HTTP) or a `slash_commands`
   * envelope (Socket Mode), then shows the ack's text/blocks (ephemeral unless `response_type: in_channel`)
   * or an error from Slackbot if the app did not answer in time.
   */
  async slashCommand(input: SlashCommandInput): Promise<Delivery> {
    const ch = this.channelOrThrow(input.channelId);
    const user = this.users.get(input.userId);
    if (!user) throw new Error(`unknown user ${input.userId}`);
    const command = input.command ?? '/release';
    const triggerId = this.newTrigger(user.id, ch.id);
    const responseUrl = this.newResponseUrl({ kind: 'command', channel: ch.id, user: user.id });
    const fields: Record<string, string> = {
      token: this.verificationToken,
      team_id: this.team.id,
      team_domain: this.team.domain,
      channel_id: ch.id,
      channel_name: ch.isIm ? 'directmessage' : ch.name,
      user_id: user.id,
      user_name: user.name,
      command,
      text: input.text ?? '',
      api_app_id: this.bot.appId,
      is_enterprise_install: 'false',
      response_url: responseUrl,
      trigger_id: triggerId,
    };
    const opts: { signingSecret?: string; timestamp?: number } = {};
    if (input.signingSecret !== undefined) opts.signingSecret = input.signingSecret;
    if (input.timestamp !== undefined) opts.timestamp = input.timestamp;
    const d = await this.deliver('slash_commands', 'slash_command', fields, opts);
    this.afterCommand(d);
    return d;
  }

  private afterCommand(d: Delivery): void {
    const p = d.payload as Record<string, string>;
    const channel = p['channel_id'] ?? '';
    const user = p['user_id'] ?? '';
    if (!d.acked) {
      this.addEphemeral({
        channel,
        user,
        from: SLACKBOT,
        text: `${p['command']} failed with the error "${d.error ?? 'dispatch_failed'}"`,
        source: 'slackbot',
      });
      return;
    }
    const r = d.response;
    if (r === undefined || r === '') return;
    const body: Json = typeof r === 'string' ? { text: r } : isObj(r) ? r : {};
    if (!body['text'] && !body['blocks']) return;
    if (body['response_type'] === 'in_channel') {
      // Slack shows the invocation from the user before an in-channel response.
      this.storeMessage(this.userMessage(channel, user, `${p['command']} ${p['text'] ?? ''}`.trim()));
    }
    const result = this.applyResponse({ kind: 'command', channel, user }, body);
    if (result !== 'ok') {
      this.addEphemeral({
        channel,
        user,
        from: SLACKBOT,
        text: `${p['command']} failed with the error "${result}"`,
        source: 'slackbot',
      });
    }
  }

  private findActionElement(
    blocks: Block[],
    actionId: string,
    blockId?: string,
  ): { block: Block; element: Json } | undefined {
    for (const b of blocks) {
      if (blockId && b['block_id'] !== blockId) continue;
      const els: unknown[] = [
        ...(Array.isArray(b['elements']) ? b['elements'] : []),
        ...(b['accessory'] ? [b['accessory']] : []),
      ];
      for (const e of els) if (isObj(e) && e['action_id'] === actionId) return { block: b, element: e };
    }
    return undefined;
  }

  /**
   * A user clicks a button (or picks an option) on a message the bot posted; Slack sends a
   * `block_actions` payload built from the stored message.
   */
  async clickButton(input: ClickButtonInput): Promise<Delivery> {
    const ch = this.channelOrThrow(input.channelId);
    const user = this.users.get(input.userId);
    if (!user) throw new Error(`unknown user ${input.userId}`);
    const msg = this.findMessage(ch.id, input.messageTs);
    const eph = msg
      ? undefined
      : this.ephemeralList.find((e) => e.ts === input.messageTs && e.user === user.id && !e.deleted);
    if (!msg && !eph) throw new Error(`no message ${input.messageTs} in ${ch.id} visible to ${user.id}`);
    const blocks = (msg?.blocks ?? eph?.blocks ?? []) as Block[];
    const found = this.findActionElement(blocks, input.actionId, input.blockId);
    if (!found) throw new Error(`no element with action_id ${input.actionId} on message ${input.messageTs}`);
    const { block, element } = found;
    const actionTs = this.nextTs();
    const action: Json = {
      action_id: input.actionId,
      block_id: block['block_id'],
      type: element['type'],
      action_ts: actionTs,
    };
    if (element['type'] === 'button') {
      action['text'] = element['text'];
      if (element['value'] !== undefined || input.value !== undefined)
        action['value'] = input.value ?? element['value'];
      if (element['style']) action['style'] = element['style'];
    } else if (Array.isArray(element['options'])) {
      const opt = (element['options'] as Json[]).find(
        (o) => o['value'] === (input.selectedValue ?? input.value),
      );
      action['selected_option'] = opt ?? null;
    }
    const threadTs = msg?.thread_ts ?? eph?.thread_ts;
    const responseUrl = this.newResponseUrl({
      kind: 'action',
      channel: ch.id,
      user: user.id,
      messageTs: input.messageTs,
      ephemeral: !msg,
      ...(threadTs ? { threadTs } : {}),
    });
    const container: Json = {
      type: 'message',
      message_ts: input.messageTs,
      channel_id: ch.id,
      is_ephemeral: !msg,
    };
    if (threadTs) container['thread_ts'] = threadTs;
    const payload: Json = {
      type: 'block_actions',
      user: this.userObj(user.id),
      api_app_id: this.bot.appId,
      token: this.verificationToken,
      container,
      trigger_id: this.newTrigger(user.id, ch.id),
      team: { id: this.team.id, domain: this.team.domain },
      enterprise: null,
      is_enterprise_install: false,
      channel: { id: ch.id, name: ch.isIm ? 'directmessage' : ch.name },
      ...(msg ? { message: this.publicMessage(msg) } : {}),
      state: { values: {} },
      response_url: responseUrl,
      actions: [action],
    };
    const d = await this.deliver('interactive', 'block_actions', payload, signing(input));
    return d;
  }

  /** A user submits a modal: Slack sends `view_submission` with the inputs in `view.state.values`. */
  async submitView(input: SubmitViewInput): Promise<Delivery> {
    const v = this.viewMap.get(input.viewId);
    if (!v?.open) throw new Error(`view ${input.viewId} is not open`);
    const values: Record<string, Record<string, Json>> = {};
    for (const b of v.blocks) {
      if (b['type'] !== 'input' || !isObj(b['element'])) continue;
      const el = b['element'];
      const blockId = String(b['block_id']);
      const actionId = String(el['action_id']);
      const given = input.values?.[blockId];
      const raw = typeof given === 'object' ? given[actionId] : (given ?? input.values?.[actionId]);
      const initial = typeof el['initial_value'] === 'string' ? el['initial_value'] : undefined;
      const val = (raw as string | undefined) ?? initial;
      const type = String(el['type']);
      let state: Json;
      if (type === 'static_select' || type === 'radio_buttons') {
        const opt = ((el['options'] as Json[] | undefined) ?? []).find((o) => o['value'] === val);
        state = { type, selected_option: opt ?? null };
      } else if (type === 'checkboxes' || type === 'multi_static_select') {
        const wanted = (val ?? '').split(',').filter(Boolean);
        const opts = ((el['options'] as Json[] | undefined) ?? []).filter((o) =>
          wanted.includes(String(o['value'])),
        );
        state = { type, selected_options: opts };
      } else if (type === 'users_select') state = { type, selected_user: val ?? null };
      else if (type === 'conversations_select' || type === 'channels_select')
        state = { type, selected_conversation: val ?? null };
      else state = { type, value: val ?? null };
      values[blockId] = { [actionId]: state };
    }
    v.state = { values };
    const payload: Json = {
      type: 'view_submission',
      team: { id: this.team.id, domain: this.team.domain },
      user: this.userObj(input.userId),
      api_app_id: this.bot.appId,
      token: this.verificationToken,
      trigger_id: this.newTrigger(input.userId),
      view: this.publicView(v),
      response_urls: [],
      is_enterprise_install: false,
      enterprise: null,
    };
    const d = await this.deliver('interactive', 'view_submission', payload, signing(input));
    this.afterViewSubmission(d, v);
    return d;
  }

  private afterViewSubmission(d: Delivery, v: StoredView): void {
    if (!d.acked) {
      v.errors = { '': 'We had some trouble connecting. Try again?' };
      this.changed({ type: 'view_updated', viewId: v.id, user: v.user });
      return;
    }
    const r = isObj(d.response) ? d.response : {};
    switch (r['response_action']) {
      case 'errors':
        v.errors = (isObj(r['errors']) ? r['errors'] : {}) as Record<string, string>;
        this.changed({ type: 'view_updated', viewId: v.id, user: v.user });
        return;
      case 'update':
        if (isObj(r['view'])) this.replaceView(v, r['view']);
        return;
      case 'push':
        if (isObj(r['view'])) {
          const stack = this.modalStacks.get(v.user) ?? [];
          const nv = this.makeView(r['view'], v.user, stack[0] ?? null, v.id, 'response_action');
          stack.push(nv.id);
          this.modalStacks.set(v.user, stack);
          this.changed({ type: 'view_opened', viewId: nv.id, user: v.user });
        }
        return;
      case 'clear':
        this.closeViews(v.user, true);
        return;
      default:
        this.closeViews(v.user, false);
    }
  }

  /** A user closes (cancels) a modal; sends `view_closed` when the view asked for notify_on_close. */
  async closeView(userId: string, viewId: string): Promise<Delivery | undefined> {
    const v = this.viewMap.get(viewId);
    if (!v?.open) return undefined;
    this.closeViews(userId, false);
    if (!v.notify_on_close) return undefined;
    return this.deliver('interactive', 'view_closed', {
      type: 'view_closed',
      team: { id: this.team.id, domain: this.team.domain },
      user: this.userObj(userId),
      api_app_id: this.bot.appId,
      token: this.verificationToken,
      view: this.publicView(v),
      is_cleared: false,
      is_enterprise_install: false,
      enterprise: null,
    });
  }

  /** A person posts a plain message (e.g. a thread reply); delivered as a `message` event. */
  async postAsUser(input: {
    userId: string;
    channelId: string;
    text: string;
    threadTs?: string;
  }): Promise<StoredMessage> {
    const ch = this.channelOrThrow(input.channelId);
    const threadTs = this.threadParent(ch.id, input.threadTs);
    const m = this.storeMessage(this.userMessage(ch.id, input.userId, input.text, threadTs));
    if (this.botEventsUrl || this.socketEverConnected) {
      const event: Json = {
        type: 'message',
        channel: ch.id,
        user: m.user,
        text: m.text,
        ts: m.ts,
        event_ts: m.ts,
        channel_type: ch.isIm ? 'im' : 'channel',
        team: this.team.id,
      };
      if (threadTs) event['thread_ts'] = threadTs;
      void this.sendEvent(event);
    }
    return structuredClone(m);
  }

  /**
   * What Slack does when the Request URL is saved: a signed `url_verification` POST whose `challenge`
   * must be echoed back. Resolves true when the bot answered correctly.
   */
  async verifyUrl(): Promise<boolean> {
    const challenge = randomBytes(24).toString('base64url');
    const d = await this.deliver('events_api', 'url_verification', {
      token: this.verificationToken,
      challenge,
      type: 'url_verification',
    });
    const r = d.response;
    return d.status === 200 && (r === challenge || (isObj(r) && r['challenge'] === challenge));
  }

  /** Sends an Events API `event_callback` wrapping `event`. */
  sendEvent(event: Json): Promise<Delivery> {
    return this.deliver('events_api', 'event_callback', {
      token: this.verificationToken,
      team_id: this.team.id,
      api_app_id: this.bot.appId,
      event,
      type: 'event_callback',
      event_id: `Ev${rand(10)}`,
      event_time: Math.floor(Date.now() / 1000),
      authorizations: [
        {
          enterprise_id: null,
          team_id: this.team.id,
          user_id: this.bot.userId,
          is_bot: true,
          is_enterprise_install: false,
        },
      ],
      is_ext_shared_channel: false,
      event_context: `4-${rand(20)}`,
    });
  }

  /**
   * Delivers a recorded delivery again as Slack's retries do: same payload, fresh signature, with
   * `x-slack-retry-num` / `x-slack-retry-reason` (HTTP) or `retry_attempt` / `retry_reason` (socket).
   */
  async redeliver(last: Delivery, opts: { retryNum?: number; reason?: string } = {}): Promise<Delivery> {
    const d = await this.deliver(last.kind, last.payloadType, last.payload, {
      retryNum: opts.retryNum ?? last.retryNum + 1,
      retryReason: opts.reason ?? 'http_timeout',
    });
    if (last.kind === 'slash_commands') this.afterCommand(d);
    return d;
  }

  // ---------------------------------------------------------------- console endpoints

  private consoleState(user: string): Json {
    const modal = this.openView(user);
    return {
      team: this.team,
      bot: this.bot,
      users: this.userList(),
      channels: this.channelList(),
      messages: this.messages(),
      ephemerals: this.ephemerals(user),
      view: modal ?? null,
      socketConnections: this.conns.length,
      botEventsUrl: this.botEventsUrl ?? null,
      deliveries: this.deliveries.slice(-20).map((d) => ({
        kind: d.kind,
        payloadType: d.payloadType,
        via: d.via,
        status: d.status,
        error: d.error,
        latencyMs: Math.round(d.latencyMs),
        time: d.time,
      })),
    };
  }

  private async handleConsole(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        'cache-control': 'no-store',
      });
      res.end(JSON.stringify(body));
    };
    if (path === '/console/events') {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      });
      res.write(': connected\n\n');
      this.sse.add(res);
      const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
      req.on('close', () => {
        clearInterval(keepAlive);
        this.sse.delete(res);
      });
      return;
    }
    if (path === '/console/state') return json(200, this.consoleState(url.searchParams.get('user') ?? ''));
    if (req.method !== 'POST') return json(404, { error: 'not_found' });
    let body: Json = {};
    try {
      body = JSON.parse((await this.readBody(req)).toString('utf8')) as Json;
    } catch {
      return json(400, { error: 'bad_json' });
    }
    const s = (k: string): string => String(body[k] ?? '');
    try {
      if (path === '/console/command') {
        const raw = s('text').trim();
        const m = /^(\/\S+)\s*([\s\S]*)$/.exec(raw);
        if (!m) return json(400, { error: 'a slash command starts with /' });
        const d = await this.slashCommand({
          userId: s('user'),
          channelId: s('channel'),
          command: m[1] ?? '',
          text: m[2] ?? '',
        });
        return json(200, { status: d.status, error: d.error ?? null, latencyMs: d.latencyMs });
      }
      if (path === '/console/click') {
        const input: ClickButtonInput = {
          userId: s('user'),
          channelId: s('channel'),
          messageTs: s('ts'),
          actionId: s('actionId'),
        };
        if (body['blockId']) input.blockId = s('blockId');
        if (body['value'] !== undefined) input.selectedValue = s('value');
        const d = await this.clickButton(input);
        return json(200, { status: d.status, error: d.error ?? null });
      }
      if (path === '/console/submit') {
        const d = await this.submitView({
          userId: s('user'),
          viewId: s('viewId'),
          values: (isObj(body['values']) ? body['values'] : {}) as Record<string, string>,
        });
        return json(200, { status: d.status, error: d.error ?? null });
      }
      if (path === '/console/close-view') {
        await this.closeView(s('user'), s('viewId'));
        return json(200, { ok: true });
      }
      if (path === '/console/post') {
        const input: { userId: string; channelId: string; text: string; threadTs?: string } = {
          userId: s('user'),
          channelId: s('channel'),
          text: s('text'),
        };
        if (body['threadTs']) input.threadTs = s('threadTs');
        const m = await this.postAsUser(input);
        return json(200, { ts: m.ts });
      }
    } catch (err) {
      return json(400, { error: err instanceof Error ? err.message : String(err) });
    }
    return json(404, { error: 'not_found' });
  }
}
