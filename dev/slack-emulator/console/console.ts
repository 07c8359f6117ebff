// The chat console: a page (console.html, plain HTML + JS, read on each request so it can be edited while
// the emulator runs), its state as JSON, live changes over Server-Sent Events, and the actions a person
// takes in it (commands, clicks, modal submits, messages), which go through the same Interactions as a
// test's.
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import type { Interactions } from '../events/interactions.ts';
import type { ClickButtonInput } from '../options.ts';
import type { ChangeEvent, Json } from '../types.ts';
import { isObj, readBody } from '../util.ts';
import type { Workspace } from '../workspace.ts';

const PAGE = new URL('./console.html', import.meta.url);

export function consoleHtml(): string {
  return readFileSync(PAGE, 'utf8');
}

/** What the page receives per change: deliveries without their payloads. */
function sseData(e: ChangeEvent): string {
  const shown =
    e.type === 'delivery'
      ? {
          type: 'delivery',
          kind: e.delivery.kind,
          status: e.delivery.status,
          payloadType: e.delivery.payloadType,
          error: e.delivery.error,
        }
      : e;
  return `data: ${JSON.stringify(shown)}\n\n`;
}

export class Console {
  private readonly sse = new Set<http.ServerResponse>();
  private readonly unsubscribe: () => void;

  private readonly ws: Workspace;
  private readonly interactions: Interactions;
  private readonly socketConnections: () => number;

  constructor(ws: Workspace, interactions: Interactions, socketConnections: () => number) {
    this.ws = ws;
    this.interactions = interactions;
    this.socketConnections = socketConnections;
    this.unsubscribe = ws.onChange((e) => {
      const data = sseData(e);
      for (const r of this.sse) r.write(data);
    });
  }

  close(): void {
    this.unsubscribe();
    for (const r of this.sse) r.end();
    this.sse.clear();
  }

  private state(user: string): Json {
    const ws = this.ws;
    return {
      team: ws.team,
      bot: ws.bot,
      users: ws.userList(),
      channels: ws.channelList(),
      messages: ws.messages(),
      ephemerals: ws.ephemerals(user),
      view: ws.openView(user) ?? null,
      socketConnections: this.socketConnections(),
      botEventsUrl: ws.botEventsUrl ?? null,
      deliveries: ws.deliveries.slice(-20).map((d) => ({
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

  /** GET / and /index.html. */
  page(res: http.ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(consoleHtml());
  }

  /** /console/*: events, state and the person's actions. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
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
    if (path === '/console/state') return json(200, this.state(url.searchParams.get('user') ?? ''));
    if (req.method !== 'POST') return json(404, { error: 'not_found' });
    let body: Json = {};
    try {
      body = JSON.parse((await readBody(req)).toString('utf8')) as Json;
    } catch {
      return json(400, { error: 'bad_json' });
    }
    const s = (k: string): string => String(body[k] ?? '');
    const act = this.interactions;
    try {
      if (path === '/console/command') {
        const raw = s('text').trim();
        const m = /^(\/\S+)\s*([\s\S]*)$/.exec(raw);
        if (!m) return json(400, { error: 'a slash command starts with /' });
        const d = await act.slashCommand({
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
        const d = await act.clickButton(input);
        return json(200, { status: d.status, error: d.error ?? null });
      }
      if (path === '/console/submit') {
        const d = await act.submitView({
          userId: s('user'),
          viewId: s('viewId'),
          values: (isObj(body['values']) ? body['values'] : {}) as Record<string, string>,
        });
        return json(200, { status: d.status, error: d.error ?? null });
      }
      if (path === '/console/close-view') {
        await act.closeView(s('user'), s('viewId'));
        return json(200, { ok: true });
      }
      if (path === '/console/post') {
        const input: { userId: string; channelId: string; text: string; threadTs?: string } = {
          userId: s('user'),
          channelId: s('channel'),
          text: s('text'),
        };
        if (body['threadTs']) input.threadTs = s('threadTs');
        const m = await act.postAsUser(input);
        return json(200, { ts: m.ts });
      }
    } catch (err) {
      return json(400, { error: err instanceof Error ? err.message : String(err) });
    }
    return json(404, { error: 'not_found' });
  }
}
