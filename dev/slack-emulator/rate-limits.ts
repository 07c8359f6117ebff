// Slack's Web API rate limits, enforced by the emulator when asked
// (`new SlackEmulator({ rateLimits: true })` or with own figures). Off by
// default, so tests that do not care see no 429s.
//
// Slack: chat.postMessage allows about 1 message per second per channel
// (short bursts tolerated); chat.update is Tier 3 (50+ per minute, per app
// per workspace); chat.postEphemeral Tier 4 (100+ per minute). Over the
// limit Slack answers HTTP 429 with `Retry-After` (seconds) and
// `{ok:false, error:'ratelimited'}`.
//
// Self-contained (no imports), so it moves with the emulator.

export interface LimitRate {
  /** Calls per `perMs`, sustained. */
  count: number;
  perMs: number;
  /** Calls allowed back to back (default 1). */
  burst?: number;
}

export interface SlackRateLimitOptions {
  /** Per channel (default 1/s, burst 3). */
  postMessage?: LimitRate;
  /** Per workspace (default 50/min, burst 20). */
  update?: LimitRate;
  /** Per workspace (default 100/min, burst 20). */
  postEphemeral?: LimitRate;
}

export const SLACK_LIMITS: Required<SlackRateLimitOptions> = {
  postMessage: { count: 1, perMs: 1000, burst: 3 },
  update: { count: 50, perMs: 60_000, burst: 20 },
  postEphemeral: { count: 100, perMs: 60_000, burst: 20 },
};

export class SlackRateLimits {
  private readonly rates: Required<SlackRateLimitOptions>;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  /** 429s answered, by method. */
  readonly limited: Record<string, number> = {};

  constructor(opts: SlackRateLimitOptions = {}) {
    this.rates = { ...SLACK_LIMITS, ...opts };
  }

  /**
   * Takes a token for a call; returns undefined when it may go, else the
   * Retry-After in seconds (whole, at least 1, as Slack sends it).
   */
  check(method: string, args: Record<string, unknown>, now = Date.now()): number | undefined {
    let rate: LimitRate;
    let key: string;
    if (method === 'chat.postMessage') {
      rate = this.rates.postMessage;
      key = `${method}:${String(args['channel'] ?? '')}`;
    } else if (method === 'chat.update' || method === 'chat.postEphemeral') {
      rate = method === 'chat.update' ? this.rates.update : this.rates.postEphemeral;
      key = method;
    } else return undefined;
    const burst = rate.burst ?? 1;
    const b = this.buckets.get(key) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) * rate.count) / rate.perMs);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return undefined;
    }
    this.limited[method] = (this.limited[method] ?? 0) + 1;
    return Math.max(1, Math.ceil(((1 - b.tokens) * rate.perMs) / rate.count / 1000));
  }
}
