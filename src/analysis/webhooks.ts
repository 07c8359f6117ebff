// Rollout webhooks, as Flagger has them: pre-rollout (before the first batch),
// confirm-promotion (at each batch gate) and post-rollout (after the last).
// Ferry POSTs a JSON payload; a 2xx answer is a yes, any other answer a no
// with the body as its reason. The payload is signed with HMAC-SHA256 when
// the hook names a key: header X-Ferry-Signature: sha256=<hex of
// HMAC(key, "<timestamp>.<body>")> and X-Ferry-Timestamp, so a receiver can
// refuse replays. Network errors, timeouts and 5xx are retried with backoff;
// when every attempt failed the hook did not answer, which is a no as well
// (a gate must not pass because its judge was down).

import { createHmac } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WebhookStep } from '../domain/analysis.ts';
import { durationMs } from '../domain/duration.ts';

export interface WebhookPayload {
  kind: WebhookStep['kind'];
  releaseId: string;
  app: string;
  environment: string;
  region: string;
  version: string;
  batch?: { index: number; total: number; pods: number; replicas: number };
  /** The analysis of the batch, when there was one. */
  analysis?: { verdict: string; checks: { check: string; verdict: string; detail: string }[] };
}

export type WebhookAnswer = { ok: true; attempts: number } | { ok: false; reason: string; attempts: number };

export function signPayload(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export async function callWebhook(
  hook: WebhookStep,
  payload: WebhookPayload,
  opts: { env?: NodeJS.ProcessEnv; backoffMs?: number; signal?: AbortSignal } = {},
): Promise<WebhookAnswer> {
  const env = opts.env ?? process.env;
  const body = JSON.stringify({ name: hook.name, ...payload });
  const secret = hook.secretEnv ? env[hook.secretEnv] : undefined;
  if (hook.secretEnv && !secret)
    return {
      ok: false,
      reason: `webhook ${hook.name}: its key ${hook.secretEnv} is not set on the worker`,
      attempts: 0,
    };
  let last = '';
  for (let attempt = 1; attempt <= hook.retries + 1; attempt++) {
    if (attempt > 1) await sleep((opts.backoffMs ?? 500) * 2 ** (attempt - 2));
    if (opts.signal?.aborted) break;
    const timestamp = String(Math.floor(Date.now() / 1000));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'ferry-webhook',
      'x-ferry-timestamp': timestamp,
      'x-ferry-webhook': hook.kind,
    };
    if (secret) headers['x-ferry-signature'] = signPayload(secret, timestamp, body);
    try {
      const res = await fetch(hook.url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(durationMs(hook.timeout)),
      });
      const text = (await res.text().catch(() => '')).trim().slice(0, 500);
      if (res.ok) return { ok: true, attempts: attempt };
      if (res.status < 500)
        return {
          ok: false,
          reason: `webhook ${hook.name} said no (HTTP ${res.status})${text ? `: ${text}` : ''}`,
          attempts: attempt,
        };
      last = `HTTP ${res.status}${text ? `: ${text}` : ''}`;
    } catch (err) {
      const e = err as Error;
      last = e.name === 'TimeoutError' ? `no answer within ${hook.timeout}` : e.message;
    }
  }
  return {
    ok: false,
    reason: `webhook ${hook.name} did not answer after ${hook.retries + 1} attempt${hook.retries ? 's' : ''} (${last})`,
    attempts: hook.retries + 1,
  };
}
