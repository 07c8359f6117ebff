// Errors a step can raise. A transient one (a registry 503, a dropped
// connection) is retried with backoff; anything else fails the release at
// once with its message, which is what the thread shows.
export class TransientError extends Error {
  readonly transient = true;
}

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

export function isTransient(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { transient?: unknown; code?: unknown; status?: unknown; cause?: unknown };
  if (e.transient === true) return true;
  if (typeof e.code === 'string' && TRANSIENT_CODES.has(e.code)) return true;
  if (typeof e.status === 'number' && (e.status === 429 || e.status >= 500)) return true;
  return e.cause !== undefined && e.cause !== err && isTransient(e.cause);
}
