// The HTTP receiver for Slack's requests (slash commands, buttons, modals,
// events), with Ferry's own request verification in front of Bolt's routing.
//
// Bolt 5's check refuses only timestamps more than 5 minutes in the PAST: a
// correctly signed request stamped an hour AHEAD passes, so a captured (or
// pre-signed) request could be replayed later. Ferry verifies every request
// with src/chat/slack/signature.ts — the one verifier — which refuses a timestamp
// more than MAX_SKEW_SECONDS off in either direction, and turns Bolt's own
// verification off so there are not two rules that could disagree.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import { HTTPModuleFunctions, HTTPReceiver, type HTTPReceiverOptions } from '@slack/bolt';
import { verifySlackRequestDetailed } from './signature.ts';

export interface VerifyingReceiverOptions extends Omit<HTTPReceiverOptions, 'signatureVerification'> {
  signingSecret: string;
  /** Called for every refused request (for logs and metrics). */
  onRefused?: (reason: string, path: string) => void;
  /** Seconds since the epoch; tests only. */
  now?: () => number;
}

const EVENTS_PATH = '/slack/events';

export class VerifyingReceiver extends HTTPReceiver {
  constructor(opts: VerifyingReceiverOptions) {
    const { onRefused, now, ...boltOptions } = opts;
    super({ ...boltOptions, signatureVerification: false });
    const endpoints = new Set(
      opts.endpoints === undefined
        ? [EVENTS_PATH]
        : typeof opts.endpoints === 'string'
          ? [opts.endpoints]
          : opts.endpoints,
    );
    const route = this.requestListener;
    const bodyLimit = opts.bodyLimit ?? HTTPModuleFunctions.defaultBodyLimit;
    this.requestListener = (req: IncomingMessage, res: ServerResponse) => {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      if (req.method?.toUpperCase() !== 'POST' || !endpoints.has(path)) {
        route(req, res);
        return;
      }
      // Buffer the body once; Bolt reuses `rawBody` when it is already there.
      HTTPModuleFunctions.bufferIncomingMessage(req, bodyLimit).then(
        (buffered) => {
          if (isSslCheck(req, buffered.rawBody)) {
            // Slack's certificate check carries no signature; keep only the marker, as Bolt does, so
            // nothing else can ride along unauthenticated.
            buffered.rawBody = Buffer.from('ssl_check=1');
            route(buffered, res);
            return;
          }
          const verdict = verifySlackRequestDetailed(
            opts.signingSecret,
            req.headers,
            buffered.rawBody,
            now?.() ?? Math.floor(Date.now() / 1000),
          );
          if (!verdict.ok) {
            onRefused?.(verdict.reason, path);
            HTTPModuleFunctions.buildNoBodyResponse(res, 401);
            return;
          }
          route(buffered, res);
        },
        (err: unknown) => {
          const tooLarge =
            HTTPModuleFunctions.isRawBodyError(err) &&
            ((err as { type?: string }).type === 'entity.too.large' ||
              (err as { statusCode?: number }).statusCode === 413);
          HTTPModuleFunctions.buildNoBodyResponse(res, tooLarge ? 413 : 400);
        },
      );
    };
  }
}

function isSslCheck(req: IncomingMessage, rawBody: Buffer): boolean {
  if (req.headers['content-type'] !== 'application/x-www-form-urlencoded') return false;
  return parseQuery(rawBody.toString('utf8'))['ssl_check'] === '1';
}
