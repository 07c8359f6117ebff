// Typed errors of Ferry's registry client. Messages say which registry, which
// repository and what a person can do about it.

export class RegistryError extends Error {
  readonly registry: string;
  readonly status: number | undefined;
  readonly code: string | undefined;
  constructor(
    message: string,
    opts: { registry: string; status?: number; code?: string; cause?: unknown } = { registry: '?' },
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'RegistryError';
    this.registry = opts.registry;
    this.status = opts.status;
    this.code = opts.code;
  }
}

/** The manifest, tag, blob or upload session does not exist (HTTP 404). */
export class NotFoundError extends RegistryError {
  constructor(message: string, opts: { registry: string; status?: number; code?: string }) {
    super(message, opts);
    this.name = 'NotFoundError';
  }
}

/** Credentials missing or refused (HTTP 401/403, or the token service said no). */
export class UnauthorizedError extends RegistryError {
  constructor(message: string, opts: { registry: string; status?: number; code?: string }) {
    super(message, opts);
    this.name = 'UnauthorizedError';
  }
}

/** Content read or written does not hash to the digest it is addressed by. */
export class DigestMismatchError extends RegistryError {
  readonly expected: string;
  readonly actual: string | undefined;
  constructor(
    message: string,
    opts: { registry: string; expected: string; actual?: string; status?: number; code?: string },
  ) {
    super(message, opts);
    this.name = 'DigestMismatchError';
    this.expected = opts.expected;
    this.actual = opts.actual;
  }
}

/** The registry (or its token service) could not be reached at all. `cause` holds the network error. */
export class UnreachableError extends RegistryError {
  constructor(message: string, opts: { registry: string; cause: unknown }) {
    super(message, opts);
    this.name = 'UnreachableError';
  }
}

/** Walks `cause` chains to the innermost network error text, e.g. "connect ECONNREFUSED 127.0.0.1:5999". */
export function describeCause(err: unknown): string {
  let cur: unknown = err;
  let last = '';
  for (let i = 0; i < 6 && cur; i++) {
    if (cur instanceof Error) {
      const code = (cur as { code?: unknown }).code;
      last = cur.message + (typeof code === 'string' && !cur.message.includes(code) ? ` (${code})` : '');
      cur = (cur as { cause?: unknown }).cause;
    } else {
      last = String(cur);
      break;
    }
  }
  return last;
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError');
}
