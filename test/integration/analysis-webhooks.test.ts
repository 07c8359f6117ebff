// Rollout webhooks against a real HTTP server on 127.0.0.1, and a gate whose
// Prometheus does not answer (a closed port): inconclusive, never a pass.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { measureBatch } from '../../src/analysis/measure.ts';
import { PrometheusClient } from '../../src/analysis/prometheus.ts';
import { callWebhook } from '../../src/analysis/webhooks.ts';
import { afterVerdict, type WebhookStep } from '../../src/domain/analysis.ts';

let server: Server | undefined;
afterEach(() => server?.close());

async function serve(
  handler: (req: IncomingMessage, body: string, res: ServerResponse) => void,
): Promise<string> {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => handler(req, body, res));
  });
  await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
}

const payload = {
  kind: 'confirm-promotion' as const,
  releaseId: 'r1',
  app: 'pay',
  environment: 'prod',
  region: 'eu-west',
  version: 'v2',
};
const hook = (url: string, over: Partial<WebhookStep> = {}): WebhookStep => ({
  name: 'cab',
  kind: 'confirm-promotion',
  url,
  timeout: '1s',
  retries: 2,
  ...over,
});

describe('webhooks', () => {
  it('signs the payload with HMAC-SHA256 over timestamp and body; the receiver can verify it', async () => {
    const seen: boolean[] = [];
    const url = await serve((req, body, res) => {
      const ts = req.headers['x-ferry-timestamp'] as string;
      const want = `sha256=${createHmac('sha256', 'k3y').update(`${ts}.${body}`).digest('hex')}`;
      seen.push(req.headers['x-ferry-signature'] === want);
      res.writeHead(seen.at(-1) ? 200 : 401).end();
    });
    expect(
      await callWebhook(hook(url, { secretEnv: 'CAB_KEY' }), payload, { env: { CAB_KEY: 'k3y' } }),
    ).toEqual({
      ok: true,
      attempts: 1,
    });
    // A wrong key is refused by the receiver: the signature really depends on it.
    const wrong = await callWebhook(hook(url, { secretEnv: 'CAB_KEY' }), payload, {
      env: { CAB_KEY: 'other' },
    });
    expect(wrong).toMatchObject({ ok: false, attempts: 1 });
    expect(seen).toEqual([true, false]);
  });

  it('retries a 5xx and then takes the answer; a 4xx is a no with its reason, not retried', async () => {
    let calls = 0;
    const url = await serve((_req, _body, res) => {
      calls++;
      if (calls < 3) res.writeHead(503).end('busy');
      else res.writeHead(403).end('change board rejected: incident INC-42 open');
    });
    const a = await callWebhook(hook(url), payload, { backoffMs: 10 });
    expect(a).toEqual({
      ok: false,
      attempts: 3,
      reason: 'webhook cab said no (HTTP 403): change board rejected: incident INC-42 open',
    });
    expect(calls).toBe(3);
  });

  it('a hook that never answers in time is a no after its retries', async () => {
    let calls = 0;
    const url = await serve(() => {
      calls++; // never answers
    });
    const a = await callWebhook(hook(url, { timeout: '200ms', retries: 1 }), payload, { backoffMs: 10 });
    expect(a).toMatchObject({ ok: false, attempts: 2 });
    expect(a.ok ? '' : a.reason).toMatch(/did not answer after 2 attempts \(no answer within 200ms\)/);
    expect(calls).toBe(2);
  });
});

describe('Prometheus not answering', () => {
  it('makes the batch inconclusive, which holds for a person even when the plan says roll back', async () => {
    const closed = await serve(() => {});
    server?.close();
    const m = await measureBatch({
      checks: [
        {
          source: 'environment prod',
          value: {
            name: 'error-rate',
            query: 'x{$selector}',
            max: 0.1,
            worseWhen: 'higher',
            failureLimit: 0,
          },
        },
      ],
      scope: { app: 'pay', env: 'prod', region: 'eu-west', namespace: 'pay', version: 'v2' },
      source: new PrometheusClient(closed.replace('/hook', ''), 500),
      intervalMs: 20,
      durationMs: 60,
      oldPods: 2,
    });
    expect(m.verdict).toBe('inconclusive');
    expect(m.results[0]?.detail).toMatch(/0 of 3 measurements had a value \(Prometheus at .* did not answer/);
    expect(afterVerdict(m.verdict, 'rollback')).toBe('hold');
  });
});
