// Verifying Slack's request signature (https://api.slack.com/authentication/verifying-requests-from-slack):
// signature = 'v0=' + hex(HMAC-SHA256(signingSecret, 'v0:' + timestamp + ':' + rawBody)), and the
// timestamp within MAX_SKEW_SECONDS of now in either direction. The one verifier the bot uses
// (receiver.ts); the signing side is the Slack emulator's (dev/slack-emulator/events/signing.ts).
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Requests older (or newer) than this are rejected as possible replays. */
export const MAX_SKEW_SECONDS = 5 * 60;

function expectedSignature(secret: string, timestamp: number | string, rawBody: string | Buffer): string {
  const hmac = createHmac('sha256', secret);
  hmac.update(`v0:${timestamp}:`);
  hmac.update(rawBody);
  return `v0=${hmac.digest('hex')}`;
}

export type SlackHeaders =
  | Headers
  | Record<string, string | string[] | undefined>
  | { get(name: string): string | null };

export type VerifyResult =
  | { ok: true }
  | { ok: false; reason: 'missing_headers' | 'stale_timestamp' | 'bad_signature' | 'bad_timestamp' };

function header(headers: SlackHeaders, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  }
  const rec = headers as Record<string, string | string[] | undefined>;
  const v = rec[name] ?? rec[name.toLowerCase()];
  if (v !== undefined) return Array.isArray(v) ? v[0] : v;
  const key = Object.keys(rec).find((k) => k.toLowerCase() === name.toLowerCase());
  const w = key === undefined ? undefined : rec[key];
  return Array.isArray(w) ? w[0] : w;
}

/**
 * Verifies `x-slack-signature` over `x-slack-request-timestamp` and the raw body.
 * `now` is in seconds (defaults to the current time). Comparison is timing-safe.
 */
export function verifySlackRequestDetailed(
  secret: string,
  headers: SlackHeaders,
  rawBody: string | Buffer,
  now: number = Math.floor(Date.now() / 1000),
): VerifyResult {
  const signature = header(headers, 'x-slack-signature');
  const timestamp = header(headers, 'x-slack-request-timestamp');
  if (!signature || !timestamp) return { ok: false, reason: 'missing_headers' };
  if (!/^\d+$/.test(timestamp)) return { ok: false, reason: 'bad_timestamp' };
  if (Math.abs(now - Number(timestamp)) > MAX_SKEW_SECONDS) return { ok: false, reason: 'stale_timestamp' };
  const expected = Buffer.from(expectedSignature(secret, timestamp, rawBody), 'utf8');
  const given = Buffer.from(signature, 'utf8');
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    return { ok: false, reason: 'bad_signature' };
  }
  return { ok: true };
}
