// Matrix rendering of what Ferry says: HTML (org.matrix.custom.html) with a
// plain-text body beside it, for clients that show no HTML and for
// notifications.
//
// Every text Ferry says is in its one chat format (src/domain/text.ts):
// *bold*, _italic_, `code`, ``` blocks ``` and <@id> mentions, with a literal
// &, < or > written as an entity. So the HTML is made by turning that markup
// into tags and nothing else: a `<` that is not a mention is escaped, an `&`
// that does not start an entity is escaped, and user text (reasons, versions,
// log lines) was escaped where the domain put it in — or is escaped here
// (snippets, alert fields, file names). Mentions become matrix.to links to the
// person's Matrix id (and m.mentions, so their client notifies them).
import { countApprovals } from '../../domain/approvals.ts';
import { approvalRequirements, describeRequirements, type Plan } from '../../domain/plan.ts';
import type { Outbound } from '../../domain/ports.ts';
import { oneLine, type Release, type ReleaseState } from '../../domain/release.ts';
import { literal } from '../../domain/text.ts';
import type { MessageContent } from './client.ts';

/** How a person named by their Ferry id is shown: their name, and their Matrix id when they have one. */
export type WhoIs = (actorId: string) => { name: string; matrixId?: string };

/** Reactions on a release card that approve or reject it. */
export const APPROVE_KEYS = ['✅', '✅️', '✔️', '✔', '👍'];
export const REJECT_KEYS = ['❌', '❌️', '✖️', '👎'];
/**
 * Show logs (the card's button on Slack): the app's newest pod's output into
 * the release thread; on an OOM alert, the killed container's pod's output
 * into the alert's thread.
 */
export const LOGS_KEYS = ['📜', '🪵'];
/** Roll back (the alert's button on Slack): the release in flight that the alert names. */
export const ROLLBACK_KEYS = ['↩️'];

/**
 * Whether reaction `key` is one of `keys`. Clients send emoji with or without
 * the variation selector U+FE0F ("↩" and "↩️" are the same reaction to a
 * person), so both forms count.
 */
export function isReaction(key: string, keys: readonly string[]): boolean {
  const bare = (k: string) => k.replace(/\uFE0F/g, '');
  return keys.some((k) => bare(k) === bare(key));
}

/** The longest body Ferry sends in one event (Synapse's limit is 64 KiB for the whole event). */
export const MAX_BODY = 16_000;

const ENTITY = /^&(amp|lt|gt|quot|#\d{1,6}|#x[0-9a-f]{1,6});/i;

/** Escapes text for HTML: &, <, >, " (and keeps nothing as markup). */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Ferry's entities turned back into characters (the plain-text body). */
function unescapeText(text: string): string {
  return text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&');
}

/**
 * A piece of Ferry text outside code: made safe for HTML. Entities stay; an
 * `&` that starts none is escaped; `<` and `>` (which Ferry text only uses for
 * markup, handled before this) are escaped; `"` too.
 */
function safeHtml(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '&') out += ENTITY.test(text.slice(i)) ? '&' : '&amp;';
    else if (c === '<') out += '&lt;';
    else if (c === '>') out += '&gt;';
    else if (c === '"') out += '&quot;';
    else out += c;
  }
  return out;
}

interface Converted {
  html: string;
  plain: string;
  mentions: Set<string>;
}

/** Inline markup of one piece of text (no code blocks inside): mentions, `code`, *bold*, _italic_. */
function inline(text: string, who: WhoIs, out: Converted): void {
  // Tokens: <@id>, <!date^…|fallback>, <url|label>, `code`, *bold*, _italic_.
  const re =
    /<@([^<>|\s]+)>|<!date\^[^|<>]*\|([^<>]*)>|<(https?:\/\/[^|<>\s]+)(?:\|([^<>]*))?>|`([^`\n]+)`|\*([^*\n]+)\*|(?<![\w])_([^_\n]+)_(?![\w])/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    const before = text.slice(last, m.index);
    out.html += safeHtml(before);
    out.plain += unescapeText(before);
    last = (m.index ?? 0) + m[0].length;
    if (m[1] !== undefined) {
      const w = who(m[1]);
      if (w.matrixId) {
        out.html += `<a href="https://matrix.to/#/${encodeURIComponent(w.matrixId)}">${escapeHtml(w.name)}</a>`;
        out.plain += w.name;
        out.mentions.add(w.matrixId);
      } else {
        out.html += escapeHtml(w.name);
        out.plain += w.name;
      }
    } else if (m[2] !== undefined) {
      out.html += safeHtml(m[2]);
      out.plain += unescapeText(m[2]);
    } else if (m[3] !== undefined) {
      const label = m[4] ?? m[3];
      out.html += `<a href="${escapeHtml(m[3])}">${safeHtml(label)}</a>`;
      out.plain += `${unescapeText(label)}${m[4] !== undefined ? ` (${m[3]})` : ''}`;
    } else if (m[5] !== undefined) {
      out.html += `<code>${safeHtml(m[5])}</code>`;
      out.plain += `\`${unescapeText(m[5])}\``;
    } else if (m[6] !== undefined) {
      out.html += `<strong>${inlineHtml(m[6], who, out)}</strong>`;
      out.plain += unescapeText(m[6]).replace(/<@([^<>|\s]+)>/g, (_x, id: string) => who(id).name);
    } else if (m[7] !== undefined) {
      out.html += `<em>${inlineHtml(m[7], who, out)}</em>`;
      out.plain += unescapeText(m[7]).replace(/<@([^<>|\s]+)>/g, (_x, id: string) => who(id).name);
    }
  }
  const rest = text.slice(last);
  out.html += safeHtml(rest);
  out.plain += unescapeText(rest);
}

/** Inline HTML of a piece inside bold or italic (mentions still become links). */
function inlineHtml(text: string, who: WhoIs, out: Converted): string {
  const inner: Converted = { html: '', plain: '', mentions: out.mentions };
  inline(text, who, inner);
  return inner.html;
}

/**
 * Commands quoted in Ferry's text are written as Slack's `/release`; on Matrix
 * people type `!release` (or the configured word), so that is what they read.
 */
export function asMatrixCommands(text: string, command = '!release'): string {
  return text.replace(/(^|[\s`(])\/release\b/g, (_m, before: string) => `${before}${command}`);
}

/** Ferry text → HTML and plain text, with the Matrix users it mentions. */
export function fromFerryText(text: string, who: WhoIs): MessageContent {
  const out: Converted = { html: '', plain: '', mentions: new Set() };
  const parts = text.split('```');
  parts.forEach((part, i) => {
    if (i % 2 === 1 && i < parts.length - 1) {
      // A code block: its text is shown as it is (entities kept, nothing else is markup).
      const code = part.replace(/^\n/, '').replace(/\n$/, '');
      out.html += `<pre><code>${safeHtml(code)}</code></pre>`;
      out.plain += `\n${unescapeText(code)}\n`;
      return;
    }
    const piece = i % 2 === 1 ? `\`\`\`${part}` : part;
    const lines = piece.split('\n');
    lines.forEach((line, j) => {
      if (j > 0) {
        out.html += '<br>';
        out.plain += '\n';
      }
      inline(line, who, out);
    });
  });
  return {
    body: clipText(out.plain.replace(/\n{3,}/g, '\n\n').trim() || ' ', MAX_BODY),
    html: out.html,
    ...(out.mentions.size ? { mentions: [...out.mentions] } : {}),
  };
}

/** Raw text (a log, an error) as a code block: escaped, and cut to its first and last lines. */
export function codeBlockOf(raw: string, maxChars = 6000): { html: string; plain: string; cut: boolean } {
  const fit = headTail(raw, maxChars);
  return { html: `<pre><code>${escapeHtml(fit.text)}</code></pre>`, plain: fit.text, cut: fit.cut };
}

function headTail(text: string, max: number): { text: string; cut: boolean } {
  if (text.length <= max) return { text, cut: false };
  const lines = text.split('\n');
  const head: string[] = [];
  const tail: string[] = [];
  let used = 0;
  let i = 0;
  let j = lines.length - 1;
  // Head: up to 40% of the room; tail: the rest (the end of a log is what people read).
  while (i <= j && used + (lines[i] as string).length + 1 <= max * 0.4) {
    used += (lines[i] as string).length + 1;
    head.push(lines[i++] as string);
  }
  while (j >= i && used + (lines[j] as string).length + 1 <= max - 80) {
    used += (lines[j] as string).length + 1;
    tail.unshift(lines[j--] as string);
  }
  const omitted = j - i + 1;
  const marker = `… ${omitted} line${omitted === 1 ? '' : 's'} omitted (the whole text is attached) …`;
  const out = [...head, ...(omitted > 0 ? [marker] : []), ...tail].join('\n');
  return { text: clipText(out, max), cut: true };
}

export function clipText(s: string, max: number): string {
  if (s.length <= max) return s;
  let cut = s.slice(0, max - 1);
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return `${cut}…`;
}

// ------------------------------------------------------------------ the release card

const STATE_ICON: Record<ReleaseState, string> = {
  requested: '⏳',
  queued: '⌛',
  'awaiting-approval': '✋',
  approved: '✅',
  building: '🛠️',
  syncing: '🔄',
  deploying: '🚀',
  verifying: '🔍',
  succeeded: '🟢',
  rejected: '⛔',
  expired: '⏰',
  paused: '⏸️',
  failed: '🔴',
  'rolling-back': '⏪',
  'rolled-back': '↩️',
  aborted: '🛑',
};

const when = (at: number) => `${new Date(at).toISOString().replace('T', ' ').slice(0, 16)} UTC`;

function planLine(plan: Plan): string {
  const approvals = describeRequirements(approvalRequirements(plan), (g) => `*${g}*`);
  const b = plan.batches.value;
  const batches = `${b.length} batch${b.length === 1 ? '' : 'es'} (${b.map((x) => `${x.size}${x.manualPromotion ? ' ✋' : ''}`).join(' → ')})`;
  const gate = `gate ${plan.gate.pause.value}, then ${plan.gate.onFailure.value === 'rollback' ? 'roll back' : 'wait'} on failure`;
  const factors = plan.factors.length ? ` · factors ${plan.factors.join(', ')}` : '';
  return `${approvals} · ${batches} · ${gate}${factors}`;
}

/** What a person can do with the card now, in Matrix terms (reactions and `!release` commands). */
function howTo(r: Release, command: string): string | undefined {
  switch (r.state) {
    case 'awaiting-approval':
      return `React ✅ to approve or ❌ to reject — or \`${command} approve ${r.id}\` / \`${command} reject ${r.id} <reason>\`.`;
    case 'deploying':
      return r.awaitingPromotion
        ? `\`${command} resume ${r.id}\` promotes the next batch; \`${command} abort ${r.id}\` stops. React 📜 for the logs.`
        : `\`${command} pause ${r.id}\` or \`${command} abort ${r.id}\`. React 📜 for the logs.`;
    case 'paused':
      return `\`${command} resume ${r.id}\` or \`${command} abort ${r.id}\`.`;
    case 'failed':
      return `\`${command} rollback ${r.app} to ${r.environment}\` rolls it back.`;
    default:
      return undefined;
  }
}

/** The release card as Ferry text (then rendered like every other text). */
export function cardText(r: Release, command = '!release'): string {
  const lines = [
    `*${STATE_ICON[r.state]} ${literal(r.app)} ${literal(r.version)} → ${literal(r.environment)}* — ${r.state}${r.state === 'deploying' && r.awaitingPromotion ? ' (waiting to promote)' : ''}`,
    `Regions: ${r.regions.join(' → ') || '—'} · requested by <@${r.requestedBy}> at ${when(r.requestedAt)}`,
    `Plan: ${planLine(r.plan)}`,
  ];
  const b = r.batch;
  if (b) {
    const done =
      r.progress && Object.keys(r.progress).length
        ? ` (done: ${Object.entries(r.progress)
            .map(([region, n]) => `${region} ${n}`)
            .join(', ')})`
        : '';
    lines.push(`Progress: ${b.region} batch ${b.index}/${b.total} · ${b.pods}/${b.replicas} pods${done}`);
  }
  const requirements = approvalRequirements(r.plan);
  const need = requirements.reduce((n, q) => n + q.required.value, 0);
  if (need > 0) {
    const count = countApprovals(r.plan, r.approvals);
    const at = new Map(r.approvals.map((a) => [a.by, a.at]));
    lines.push(`Approvals: ${count.total}/${need}`);
    requirements.forEach((q, i) => {
      for (const by of count.counted[i] ?? [])
        lines.push(
          `✅ Approved by <@${by}> at ${when(at.get(by) ?? 0)}${requirements.length > 1 ? ` (for *${q.group.value}*)` : ''}`,
        );
    });
    if (r.state === 'awaiting-approval' && count.missing.length) {
      const left = count.missing.map((m) => ({
        ...m.requirement,
        required: { ...m.requirement.required, value: m.count },
      }));
      lines.push(`Waiting for ${describeRequirements(left, (g) => `*${g}*`)}.`);
    }
  }
  if (r.rejection)
    lines.push(
      `⛔ Rejected by <@${r.rejection.by}> at ${when(r.rejection.at)}: ${literal(r.rejection.reason)}`,
    );
  const how = howTo(r, command);
  if (how) lines.push(how);
  lines.push(`_${r.id} · ${r.state} since ${when(r.stateSince)} · steps in the thread_`);
  return lines.join('\n');
}

/** The card: HTML and plain text, with the error (raw text) as a code block. */
export function renderCard(r: Release, who: WhoIs, command = '!release'): MessageContent {
  const m = fromFerryText(cardText(r, command), who);
  if (r.error && r.state !== 'succeeded') {
    const cb = codeBlockOf(r.error, 2000);
    m.html = `${m.html}<br>⚠️ <strong>Error</strong>${cb.html}`;
    m.body = `${m.body}\n⚠️ Error:\n${cb.plain}`;
  }
  return { ...m, msgtype: 'm.notice' };
}

/** The card's one-line summary (thread titles, notifications). */
export const cardSummary = (r: Release): string => unescapeText(oneLine(r));

// ------------------------------------------------------------------ text with a snippet

/** A thread reply or message: the text, and a snippet as a code block (its head and tail when long). */
export function renderText(
  text: string,
  who: WhoIs,
  snippet?: string,
): { content: MessageContent; cut: boolean } {
  const m = fromFerryText(text, who);
  if (!snippet) {
    const cut = m.body.length >= MAX_BODY;
    return { content: { ...m, msgtype: 'm.notice' }, cut };
  }
  const cb = codeBlockOf(snippet);
  return {
    content: {
      ...m,
      html: `${m.html ?? ''}${cb.html}`,
      body: `${m.body}\n${cb.plain}`,
      msgtype: 'm.notice',
    },
    cut: cb.cut,
  };
}

// ------------------------------------------------------------------ alerts

export function renderAlert(a: Extract<Outbound, { kind: 'alert' }>): {
  content: MessageContent;
  cut: boolean;
} {
  const fields = a.fields.map(([k, v]) => ({ k: escapeHtml(k), v: escapeHtml(v), pk: k, pv: v }));
  const count =
    a.count > 1
      ? `Seen ${a.count} times${a.releaseId ? ` · release ${escapeHtml(a.releaseId)}` : ''}`
      : `First seen${a.releaseId ? ` · release ${escapeHtml(a.releaseId)}` : ''}`;
  const cb = a.snippet ? codeBlockOf(a.snippet) : undefined;
  // The reactions stand for Slack's buttons; offered as Slack offers them (Roll back only with a release in flight).
  const reactions = [
    ...(a.logs ? ['📜 for the logs'] : []),
    ...(a.releaseId ? [`↩️ to roll back ${a.releaseId}`] : []),
    '🔕 to silence for a while',
  ];
  const howTo = `react ${reactions.join(', ')}`;
  const html = [
    `<strong>🚨 ${escapeHtml(a.title)}</strong>`,
    `<ul>${fields.map((f) => `<li><strong>${f.k}</strong>: ${f.v}</li>`).join('')}</ul>`,
    cb?.html ?? '',
    `<em>${count} · ${escapeHtml(howTo)}</em>`,
  ].join('');
  const body = [
    `🚨 ${a.title}${a.count > 1 ? ` (×${a.count})` : ''}`,
    ...fields.map((f) => `${f.pk}: ${f.pv}`),
    ...(cb ? [cb.plain] : []),
    `${unescapeText(count)} · ${howTo}`,
  ].join('\n');
  return { content: { body: clipText(body, MAX_BODY), html, msgtype: 'm.text' }, cut: cb?.cut ?? false };
}

/** Reactions on an alert that silence it. */
export const SILENCE_KEYS = ['🔕', '🔇'];
