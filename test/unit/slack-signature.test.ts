// Slack's request signature: the emulator signs what it sends as Slack does (its documented example), and
// the bot's one verifier accepts exactly a fresh, untampered request — stale or future-dated ones too far
// off are refused.
import { describe, expect, it } from 'vitest';
import { signSlackRequest } from '../../dev/slack-emulator/events/signing.ts';
import { type SlackHeaders, verifySlackRequestDetailed } from '../../src/chat/slack/signature.ts';

const verify = (secret: string, headers: SlackHeaders, body: string, now: number): boolean =>
  verifySlackRequestDetailed(secret, headers, body, now).ok;

describe('request signing', () => {
  const vector = {
    secret: '8f742231b10e8888abcd99yyyzzz85a5',
    ts: 1531420618,
    body: 'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c',
    sig: 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503',
  };

  it("matches Slack's documented example", () => {
    expect(signSlackRequest(vector.secret, vector.ts, vector.body)).toBe(vector.sig);
  });

  it('accepts a fresh signature and rejects stale, tampered or missing ones', () => {
    const headers = { 'x-slack-signature': vector.sig, 'x-slack-request-timestamp': String(vector.ts) };
    expect(verify(vector.secret, headers, vector.body, vector.ts + 60)).toBe(true);
    expect(verify(vector.secret, new Headers(headers), vector.body, vector.ts - 299)).toBe(true);
    expect(verify(vector.secret, headers, vector.body, vector.ts + 301)).toBe(false);
    expect(verify(vector.secret, headers, `${vector.body}x`, vector.ts)).toBe(false);
    expect(verify('other-secret', headers, vector.body, vector.ts)).toBe(false);
    expect(verify(vector.secret, { 'x-slack-signature': 'v0=00' }, vector.body, vector.ts)).toBe(false);
    expect(verify(vector.secret, { ...headers, 'x-slack-signature': 'v0=abc' }, vector.body, vector.ts)).toBe(
      false,
    );
  });
});
