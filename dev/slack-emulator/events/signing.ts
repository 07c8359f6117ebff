// How Slack signs what it sends to an app
// (https://api.slack.com/authentication/verifying-requests-from-slack):
// 'v0=' + hex(HMAC-SHA256(signingSecret, 'v0:' + timestamp + ':' + rawBody)). The bot verifies it with
// Bolt's own verification; this is only the sending side.
import { createHmac } from 'node:crypto';

export function signSlackRequest(
  secret: string,
  timestamp: number | string,
  rawBody: string | Buffer,
): string {
  const hmac = createHmac('sha256', secret);
  hmac.update(`v0:${timestamp}:`);
  hmac.update(rawBody);
  return `v0=${hmac.digest('hex')}`;
}
