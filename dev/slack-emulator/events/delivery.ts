// Delivering slash commands, interactivity and events to the bot: over Socket Mode when the app has
// connected, otherwise as a signed HTTP POST to its request URL — with Slack's ack timeout, retries
// and the record of every delivery.
import { randomUUID } from 'node:crypto';
import type { SigningOverrides } from '../options.ts';
import type { Delivery, DeliveryKind, Json } from '../types.ts';
import type { Workspace } from '../workspace.ts';
import { signSlackRequest } from './signing.ts';
import type { SocketMode } from './socket-mode.ts';

export interface DeliverOptions extends SigningOverrides {
  retryNum?: number;
  retryReason?: string;
}

type DeliveryBase = Pick<Delivery, 'id' | 'kind' | 'payloadType' | 'payload' | 'retryNum' | 'time'>;

export class Deliverer {
  private readonly ws: Workspace;
  private readonly socket: SocketMode;

  constructor(ws: Workspace, socket: SocketMode) {
    this.ws = ws;
    this.socket = socket;
  }

  async deliver(
    kind: DeliveryKind,
    payloadType: string,
    payload: Json,
    opts: DeliverOptions = {},
  ): Promise<Delivery> {
    const ws = this.ws;
    const retryNum = opts.retryNum ?? 0;
    const conn =
      this.socket.everConnected || !ws.botEventsUrl ? await this.socket.pickConnection() : undefined;
    const started = performance.now();
    const base: DeliveryBase = { id: randomUUID(), kind, payloadType, payload, retryNum, time: Date.now() };
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
      const ack = await this.socket.send(conn, envelopeId, rawBody);
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
    } else if (ws.botEventsUrl) {
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
    ws.deliveries.push(d);
    ws.changed({ type: 'delivery', delivery: d });
    return d;
  }

  private async httpDeliver(
    base: DeliveryBase,
    rawBody: string,
    contentType: string,
    opts: DeliverOptions,
  ): Promise<Delivery> {
    const ws = this.ws;
    const url = ws.botEventsUrl ?? '';
    const ts = opts.timestamp ?? Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      'content-type': contentType,
      'user-agent': 'Slackbot 1.0 (+https://api.slack.com/robots)',
      'x-slack-request-timestamp': String(ts),
      'x-slack-signature': signSlackRequest(opts.signingSecret ?? ws.signingSecret, ts, rawBody),
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
        signal: AbortSignal.timeout(ws.ackTimeoutMs),
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
}
