// A Slack workspace on 127.0.0.1: the Web API (documented request/response shapes and errors), signed
// slash commands and interactivity sent to the bot over HTTP or Socket Mode, and a console page.
// Slack cannot be reached from the test machine; the real Bolt app runs against this instead.
//
// This file is the HTTP server and the public surface tests use; the parts live beside it:
//   workspace.ts   state and queries        web-api/   the Web API methods
//   events/        deliveries to the bot, Socket Mode, signing, response_url's
//   console/       the chat console page and its endpoints
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Console } from './console/console.ts';
import { Deliverer } from './events/delivery.ts';
import { Interactions } from './events/interactions.ts';
import { handleResponseUrl } from './events/response-url.ts';
import { SocketMode } from './events/socket-mode.ts';
import type {
  ClickButtonInput,
  InjectRule,
  SlackEmulatorOptions,
  SlashCommandInput,
  SubmitViewInput,
} from './options.ts';
import type { Delivery, Json, StoredMessage } from './types.ts';
import { handleFileDownload, handleUpload } from './web-api/files.ts';
import { callMethod, handleApiHttp } from './web-api/server.ts';
import { Workspace } from './workspace.ts';

export type { ClickButtonInput, InjectRule, SlackEmulatorOptions, SlashCommandInput, SubmitViewInput };

export class SlackEmulator extends Workspace {
  private server!: http.Server;
  private readonly socket = new SocketMode(this);
  private readonly interactions = new Interactions(
    this,
    new Deliverer(this, this.socket),
    () => this.botEventsUrl !== undefined || this.socket.everConnected,
  );
  private readonly console = new Console(this, this.interactions, () => this.socket.conns.length);

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
    this.server.on('upgrade', (req, socket, head) => this.socket.upgrade(req, socket, head));
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
    this.socket.close();
    this.console.close();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.baseUrl);
    const path = url.pathname;
    if (path.startsWith('/api/')) return handleApiHttp(this, req, res, url);
    if (path.startsWith('/upload/v1/')) return handleUpload(this, req, res, path);
    if (path.startsWith('/commands/') || path.startsWith('/actions/'))
      return handleResponseUrl(this, req, res, path);
    if (path.startsWith('/files/')) return handleFileDownload(this, res, path, url);
    if (path === '/' || path === '/index.html') return this.console.page(res);
    if (path.startsWith('/console/')) return this.console.handle(req, res, url);
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  }

  /** Runs a Web API method against the workspace state (also usable without HTTP). */
  callMethod(method: string, args: Json, token: string | undefined): Json {
    return callMethod(this, method, args, token);
  }

  // ---------------------------------------------------------------- fault injection

  /** Inject rate limits (429 + Retry-After), 5xx answers and slow answers into the Web API. */
  inject(rule: InjectRule): void {
    this.rules.push({ ...rule });
  }
  clearInjections(): void {
    this.rules.length = 0;
  }

  // ---------------------------------------------------------------- Socket Mode

  get socketConnections(): number {
    return this.socket.conns.length;
  }
  /** Total Socket Mode connections accepted so far. */
  get socketConnectionsOpened(): number {
    return this.socket.opened;
  }
  /** Resolves once at least `count` Socket Mode connections are open and greeted. */
  waitForSocket(opts: { count?: number; opened?: number; timeoutMs?: number } = {}): Promise<void> {
    return this.socket.waitFor(opts);
  }
  /** Sends `{type:'disconnect', reason}` on every connection, then closes it after `graceMs`. */
  socketDisconnect(
    reason: 'refresh_requested' | 'warning' | 'link_disabled' = 'refresh_requested',
    graceMs = 2000,
  ): void {
    this.socket.disconnect(reason, graceMs);
  }
  /** Drops every Socket Mode connection abruptly (no close frame), like a network failure. */
  socketDrop(): void {
    this.socket.drop();
  }

  // ---------------------------------------------------------------- what people do (events/interactions.ts)

  slashCommand(input: SlashCommandInput): Promise<Delivery> {
    return this.interactions.slashCommand(input);
  }
  clickButton(input: ClickButtonInput): Promise<Delivery> {
    return this.interactions.clickButton(input);
  }
  submitView(input: SubmitViewInput): Promise<Delivery> {
    return this.interactions.submitView(input);
  }
  closeView(userId: string, viewId: string): Promise<Delivery | undefined> {
    return this.interactions.closeView(userId, viewId);
  }
  postAsUser(input: {
    userId: string;
    channelId: string;
    text: string;
    threadTs?: string;
  }): Promise<StoredMessage> {
    return this.interactions.postAsUser(input);
  }
  verifyUrl(): Promise<boolean> {
    return this.interactions.verifyUrl();
  }
  sendEvent(event: Json): Promise<Delivery> {
    return this.interactions.sendEvent(event);
  }
  redeliver(last: Delivery, opts: { retryNum?: number; reason?: string } = {}): Promise<Delivery> {
    return this.interactions.redeliver(last, opts);
  }
}
