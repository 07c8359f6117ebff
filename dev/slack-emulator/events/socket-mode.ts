// Socket Mode: the WebSocket the app opens with a ticket from apps.connections.open, the hello /
// disconnect messages and pings Slack sends, and the acks (by envelope_id) the app sends back.
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Json } from '../types.ts';
import { isObj } from '../util.ts';
import type { Workspace } from '../workspace.ts';

export interface Conn {
  id: number;
  ws: WebSocket;
  opened: number;
  ping: NodeJS.Timeout;
}

interface PendingAck {
  resolve: (payload: Json | undefined) => void;
}

export class SocketMode {
  readonly conns: Conn[] = [];
  /** Total Socket Mode connections accepted so far. */
  opened = 0;
  /** Once an app has connected over Socket Mode, deliveries go over it (and wait for a reconnect). */
  everConnected = false;
  private connSeq = 0;
  private readonly pending = new Map<string, PendingAck>();
  private readonly wss = new WebSocketServer({ noServer: true });

  private readonly ws: Workspace;

  constructor(ws: Workspace) {
    this.ws = ws;
  }

  /** The server's 'upgrade' handler: accepts /link/?ticket=… with a fresh, unused ticket. */
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const ticket = url.searchParams.get('ticket') ?? '';
    const issued = this.ws.tickets.get(ticket);
    if (!url.pathname.startsWith('/link') || issued === undefined || Date.now() - issued > 60_000) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
      return;
    }
    this.ws.tickets.delete(ticket);
    this.wss.handleUpgrade(req, socket, head, (socketWs) => this.onSocket(socketWs));
  }

  private onSocket(sock: WebSocket): void {
    const conn: Conn = {
      id: ++this.connSeq,
      ws: sock,
      opened: Date.now(),
      ping: setInterval(() => {
        if (sock.readyState === sock.OPEN) sock.ping(Buffer.from(`ping-${Date.now()}`));
      }, this.ws.socketPingIntervalMs),
    };
    this.conns.push(conn);
    this.opened += 1;
    this.everConnected = true;
    sock.on('message', (data) => {
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
        this.ws.changed({ type: 'socket', connected: this.conns.length, reason: 'closed' });
      }
    };
    sock.on('close', gone);
    sock.on('error', gone);
    sock.send(
      JSON.stringify({
        type: 'hello',
        num_connections: this.conns.length,
        debug_info: { host: 'applink-emulator', build_number: 1, approximate_connection_time: 18060 },
        connection_info: { app_id: this.ws.bot.appId },
      }),
    );
    this.ws.changed({ type: 'socket', connected: this.conns.length, reason: 'hello' });
  }

  /** Resolves once at least `count` connections are open and greeted (and `opened` were ever accepted). */
  async waitFor(opts: { count?: number; opened?: number; timeoutMs?: number } = {}): Promise<void> {
    const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
    while (
      this.conns.length < (opts.count ?? 1) ||
      (opts.opened !== undefined && this.opened < opts.opened)
    ) {
      if (Date.now() > deadline)
        throw new Error(`no Socket Mode connection within ${opts.timeoutMs ?? 15_000} ms`);
      await sleep(20);
    }
  }

  /**
   * Sends `{type:'disconnect', reason}` on every open connection, as Slack does before recycling a
   * connection; closes the socket itself after `graceMs` if the client has not.
   */
  disconnect(reason: 'refresh_requested' | 'warning' | 'link_disabled', graceMs: number): void {
    for (const c of [...this.conns]) {
      c.ws.send(JSON.stringify({ type: 'disconnect', reason, debug_info: { host: 'applink-emulator' } }));
      if (reason !== 'warning') {
        setTimeout(() => {
          if (c.ws.readyState === c.ws.OPEN) c.ws.close(1001, reason);
        }, graceMs).unref();
      }
    }
  }

  /** Drops every connection abruptly (no close frame), like a network failure. */
  drop(): void {
    for (const c of [...this.conns]) c.ws.terminate();
  }

  /** The newest open connection; waits for a reconnect (socketWaitMs) when the app used Socket Mode before. */
  async pickConnection(): Promise<Conn | undefined> {
    const deadline = Date.now() + (this.ws.botEventsUrl ? 0 : this.ws.socketWaitMs);
    for (;;) {
      const open = this.conns.filter((c) => c.ws.readyState === c.ws.OPEN);
      if (open.length > 0) return open.at(-1);
      if (!this.everConnected || Date.now() >= deadline) return undefined;
      await sleep(25);
    }
  }

  /** Sends an envelope and resolves with the ack's payload, or undefined when none came within the ack timeout. */
  send(conn: Conn, envelopeId: string, rawBody: string): Promise<Json | undefined> {
    return new Promise<Json | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(envelopeId);
        resolve(undefined);
      }, this.ws.ackTimeoutMs);
      this.pending.set(envelopeId, {
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p);
        },
      });
      conn.ws.send(rawBody);
    });
  }

  close(): void {
    for (const c of [...this.conns]) {
      clearInterval(c.ping);
      c.ws.terminate();
    }
    this.conns.length = 0;
    for (const p of this.pending.values()) p.resolve(undefined);
    this.pending.clear();
    this.wss.close();
  }
}
