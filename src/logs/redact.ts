// Secret redaction for text that leaves Ferry: every chat message, thread
// reply, snippet and uploaded file (build logs included) passes through it at
// the notify queue's entry (QueueAnnouncer) and again at the Slack client
// (the notifier's and the bot's), and every pino log line (src/logging.ts).
// There is one redactor: this file.
// Works line by line on a stream, so a log of any size is redacted with a
// bounded buffer: `LineSplitter` cuts chunks into lines (a line longer than
// `maxLineBytes` is truncated — a secret is never split across two pieces),
// `Redactor` rewrites each line and carries state across lines for PEM
// private-key blocks, which span many lines.

export interface RedactionPattern {
  name: string;
  pattern: string;
}

export const REDACTED = '[REDACTED]';

interface Rule {
  name: string;
  re: RegExp;
  replace: (match: string, ...groups: string[]) => string;
}

// Names of settings whose value is a secret: password=…, "apiKey": "…", DB_PASSWORD: …
const SECRET_KEY = String.raw`[A-Za-z0-9_.-]{0,40}?(?:passw(?:or)?d|passphrase|pwd|(?<![a-z])pass(?![a-z])|secret|token|api[_-]?key|apikey|access[_-]?key|account[_-]?key|shared[_-]?access[_-]?key|private[_-]?key|client[_-]?secret|credentials?|auth[_-]?key|session[_-]?(?:id|key)|signature)[A-Za-z0-9_.-]{0,40}`;
// A command-line flag naming a secret, its value after a space: `--password X`, `--client-secret X`.
const SECRET_FLAG = String.raw`--?(?:[a-z0-9]+[_-])*(?:password|passwd|passphrase|pass|pwd|secret|token|api[_-]?key|access[_-]?key|account[_-]?key|client[_-]?secret|auth[_-]?token|private[_-]?key)`;
// The value: quoted (JSON, shell) or a run up to whitespace or a separator.
// A value already redacted (text passes the redactor at more than one exit) is left as it is.
const VALUE = String.raw`(?!\[REDACTED)(?:"(?:[^"\\]|\\.)*"?|'[^']*'?|[^\s,;&"'<>}\])]+)`;

const BUILT_IN: Rule[] = [
  {
    // One-line PEM (e.g. a JSON log with \n escapes): the whole block.
    name: 'private-key',
    re: /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|$)/g,
    replace: () => '[REDACTED PRIVATE KEY]',
  },
  {
    name: 'secret-setting',
    re: new RegExp(String.raw`(["']?\b${SECRET_KEY}["']?)(\s*(?:=>|=|:|%3[dDaA])\s*)(${VALUE})`, 'gi'),
    replace: (_m, key, sep, value) =>
      // `token: Bearer abc` — keep the scheme word visible, hide what follows it
      /^(?:bearer|basic)$/i.test(value ?? '') ? `${key}${sep}${value}` : `${key}${sep}${REDACTED}`,
  },
  {
    name: 'secret-flag',
    re: new RegExp(String.raw`(?<![\w-])(${SECRET_FLAG})(\s+)(?!-)(${VALUE})`, 'gi'),
    replace: (_m, flag, sp) => `${flag}${sp}${REDACTED}`,
  },
  {
    // Bearer and Basic credentials of any length (a short token is still a token); `realm=` and the
    // like are the challenge of a WWW-Authenticate header, not a credential.
    name: 'authorization',
    re: /\b(bearer|basic)(\s+)(?!realm\b|\[REDACTED)([A-Za-z0-9\-._~+/]+=*)/gi,
    replace: (_m, scheme, sp) => `${scheme}${sp}${REDACTED}`,
  },
  {
    name: 'authorization',
    re: /\b(token|digest)(\s+)([A-Za-z0-9\-._~+/]{8,}=*)/gi,
    replace: (_m, scheme, sp) => `${scheme}${sp}${REDACTED}`,
  },
  {
    // curl -u user:password, wget --user=… is a secret-setting already
    name: 'basic-auth-flag',
    re: /(?<![\w-])(-u|--user)(\s+)(["']?)([^\s:"']+):([^\s"']+)/g,
    replace: (_m, flag, sp, q, user) => `${flag}${sp}${q}${user}:${REDACTED}`,
  },
  {
    // Azure SAS and other signed URLs: the signature is the secret.
    name: 'url-signature',
    re: /([?&;](?:sig|signature|X-Amz-Signature|X-Goog-Signature|X-Amz-Security-Token)=)([^&\s"'<>#]+)/gi,
    replace: (_m, pre) => `${pre}${REDACTED}`,
  },
  {
    // Oracle thin JDBC: jdbc:oracle:thin:user/password@//host:port/service (the password may hold '@').
    name: 'jdbc-oracle',
    re: /(jdbc:oracle:[a-z0-9]+:)([^\s/@:]+)\/(\S+?)@(?=\/\/|\(|[A-Za-z0-9.-]+:\d)/gi,
    replace: (_m, pre, user) => `${pre}${user}/${REDACTED}@`,
  },
  {
    name: 'jwt',
    re: /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g,
    replace: () => '[REDACTED JWT]',
  },
  {
    name: 'aws-access-key',
    re: /(?<![A-Za-z])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])/g,
    replace: () => '[REDACTED AWS KEY]',
  },
  {
    // aws_secret_access_key is caught by secret-setting; a bare 40-char secret next to "aws" is caught here.
    name: 'aws-secret',
    re: /(\baws[A-Za-z0-9_ .-]{0,30}?)([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])/gi,
    replace: (_m, pre) => `${pre}${REDACTED}`,
  },
  {
    // scheme://user:password@host — the user may be empty (redis://:pw@host) and the password may
    // hold '@' (the last '@' before the host ends it).
    name: 'url-credentials',
    re: /\b([a-z][a-z0-9+.-]{0,30}:\/\/)([^\s:/@]*):([^\s/]+)@(?=[^\s@/]+)/gi,
    replace: (_m, scheme, user) => `${scheme}${user}:${REDACTED}@`,
  },
  {
    name: 'vendor-token',
    // Slack, GitHub, GitLab, Google API keys, Stripe, npm, SendGrid
    re: /\b(?:SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}|xox[abposre]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|glpat-[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|npm_[A-Za-z0-9]{36})\b/g,
    replace: () => REDACTED,
  },
];

const PEM_BEGIN = /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----/;
const PEM_END = /-----END ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----/;
/** A line that can be part of a PEM body (base64, headers like Proc-Type). */
const PEM_BODY = /^[\sA-Za-z0-9+/=:,-]*$/;

/** Compiles config patterns; an invalid one is reported, not fatal (config validation rejects them earlier). */
export function compilePatterns(patterns: readonly RedactionPattern[]): { rules: Rule[]; invalid: string[] } {
  const rules: Rule[] = [];
  const invalid: string[] = [];
  for (const p of patterns) {
    try {
      const re = new RegExp(p.pattern, 'g');
      rules.push({ name: p.name, re, replace: () => `[REDACTED:${p.name}]` });
    } catch {
      invalid.push(p.name);
    }
  }
  return { rules, invalid };
}

export interface RedactorOptions {
  patterns?: readonly RedactionPattern[];
}

/** Rewrites lines one at a time; keep one instance per stream (it remembers an open PEM block). */
export class Redactor {
  private readonly rules: Rule[];
  private inKey = false;
  private keyLines = 0;
  /** How many secrets were hidden, by rule name. */
  readonly counts = new Map<string, number>();

  constructor(opts: RedactorOptions = {}) {
    this.rules = [...BUILT_IN, ...compilePatterns(opts.patterns ?? []).rules];
  }

  private count(name: string): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
  }

  get redactions(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  /** One line, without its newline. */
  line(text: string): string {
    if (this.inKey) {
      this.keyLines++;
      if (PEM_END.test(text)) {
        this.inKey = false;
        const rest = text.slice((text.search(PEM_END) as number) + (PEM_END.exec(text)?.[0].length ?? 0));
        return rest.trim() ? this.apply(rest) : '';
      }
      // A body line, or (no END seen) a long run of key-like lines: keep hiding.
      if (PEM_BODY.test(text) || this.keyLines < 100) return '';
      this.inKey = false;
    }
    const begin = PEM_BEGIN.exec(text);
    if (begin && !PEM_END.test(text.slice(begin.index))) {
      // A multi-line block starts here: hide it until its END line.
      this.inKey = true;
      this.keyLines = 0;
      this.count('private-key');
      return `${this.apply(text.slice(0, begin.index))}[REDACTED PRIVATE KEY]`;
    }
    return this.apply(text);
  }

  private apply(text: string): string {
    let out = text;
    for (const rule of this.rules) {
      rule.re.lastIndex = 0;
      if (!rule.re.test(out)) continue;
      rule.re.lastIndex = 0;
      out = out.replace(rule.re, (...args: unknown[]) => {
        this.count(rule.name);
        const groups = args.slice(0, -2).filter((a) => typeof a === 'string' || a === undefined) as string[];
        return rule.replace(...(groups as [string, ...string[]]));
      });
    }
    return out;
  }

  /** Whole text (several lines). */
  text(text: string): string {
    return text
      .split('\n')
      .map((l) => this.line(l))
      .join('\n');
  }
}

/** Redacts a whole text with a fresh redactor. */
export function redactText(text: string, patterns: readonly RedactionPattern[] = []): string {
  return new Redactor({ patterns }).text(text);
}

/**
 * Cuts a byte stream into lines. Bytes are decoded as UTF-8 across chunk
 * boundaries; a line longer than `maxLineBytes` keeps its start and is marked
 * truncated (the rest up to the newline is dropped, never emitted separately).
 */
export class LineSplitter {
  private readonly decoder = new TextDecoder('utf-8');
  private pending = '';
  private skipping = false;
  private readonly maxLine: number;
  private readonly onLine: (line: string) => void;

  constructor(onLine: (line: string) => void, maxLineBytes = 64 * 1024) {
    this.onLine = onLine;
    this.maxLine = maxLineBytes;
  }

  push(chunk: Uint8Array | string): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      this.take(text.slice(start, nl), true);
      start = nl + 1;
    }
    if (start < text.length) this.take(text.slice(start), false);
  }

  private take(piece: string, ends: boolean): void {
    if (this.skipping) {
      if (ends) this.skipping = false;
      return;
    }
    this.pending += piece;
    if (this.pending.length > this.maxLine) {
      this.onLine(`${this.pending.slice(0, this.maxLine)} …[line truncated]`);
      this.pending = '';
      this.skipping = !ends;
      return;
    }
    if (ends) {
      const line = this.pending.endsWith('\r') ? this.pending.slice(0, -1) : this.pending;
      this.pending = '';
      this.onLine(line);
    }
  }

  /** Emits a last line without a newline, if any. */
  end(): void {
    const rest = this.decoder.decode();
    if (rest) this.take(rest, false);
    if (this.pending && !this.skipping) this.onLine(this.pending);
    this.pending = '';
    this.skipping = false;
  }
}

/** Redacts every string in a JSON-like value (message blocks, log objects); other values are kept. */
export function redactDeep<T>(value: T, patterns: readonly RedactionPattern[] = [], depth = 0): T {
  if (typeof value === 'string') return redactText(value, patterns) as T;
  if (depth > 12 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, patterns, depth + 1)) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>))
    out[k] = redactDeep(v, patterns, depth + 1);
  return out as T;
}

/** The parts of a chat message that carry free text (never ids or keys, which must stay as they are). */
interface OutboundText {
  text?: string;
  snippet?: string;
  file?: { name: string; text: string };
  title?: string;
  fields?: [string, string][];
}

/** A message on its way to chat with every free-text part redacted. */
export function redactOutbound<T extends object>(message: T, patterns: readonly RedactionPattern[] = []): T {
  const m = { ...message } as T & OutboundText;
  const r = (t: string) => redactText(t, patterns);
  if (typeof m.text === 'string') m.text = r(m.text);
  if (typeof m.snippet === 'string') m.snippet = r(m.snippet);
  if (typeof m.title === 'string') m.title = r(m.title);
  // A binary file (a chart Ferry drew from numbers) keeps its bytes; its name and description are text.
  if (m.file && typeof m.file.text === 'string')
    m.file = { ...m.file, name: r(m.file.name), text: r(m.file.text) };
  if (Array.isArray(m.fields)) m.fields = m.fields.map(([k, v]) => [k, r(v)] as [string, string]);
  return m;
}
