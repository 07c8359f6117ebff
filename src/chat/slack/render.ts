// Block Kit rendering of what the domain announces: the release card (the
// parent of the release thread), thread replies with snippets, alerts and
// ephemeral answers. Pure functions of the stored release and the config;
// every output stays inside Slack's documented limits (3,000 chars a section
// text, 50 blocks a message, 75 chars a button label, 2,000 a button value,
// 150 a header), so a long log or a long history can never make a post fail.
// Block Kit is plain JSON; no Slack SDK types are needed here.

import { countApprovals } from '../../domain/approvals.ts';
import { approvalRequirements, describeRequirements, type Plan, type Setting } from '../../domain/plan.ts';
import type { AlertLogsTarget, Outbound } from '../../domain/ports.ts';
import { oneLine, type Release, type ReleaseState } from '../../domain/release.ts';
import { literal } from '../../domain/text.ts';
import { RELEASE_ACTIONS } from '../port.ts';

export type Block = { type: string; block_id?: string } & Record<string, unknown>;

export const SLACK_LIMITS = {
  blocks: 50,
  sectionText: 3000,
  fieldText: 2000,
  fields: 10,
  headerText: 150,
  contextElements: 10,
  buttonText: 75,
  buttonValue: 2000,
  /** Keep the top-level `text` (notification fallback) at or under this. */
  messageText: 4000,
} as const;

/** Action ids of the buttons Ferry puts on its messages: a release card's, and an alert's Show logs and Silence (its Roll back is the card's). */
export const ACTIONS = [...RELEASE_ACTIONS, 'alert-logs', 'silence'] as const;
export type ActionId = (typeof ACTIONS)[number];

export interface Rendered {
  text: string;
  blocks: Block[];
  /** The whole text, when it did not fit: upload it into the thread as a file. */
  file?: { name: string; text: string };
}

// ------------------------------------------------------------------ text helpers

/** Cuts `s` to at most `max` characters (UTF-16 units), ending with "…" when cut. */
export function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  if (max <= 1) return s.slice(0, max);
  let cut = s.slice(0, max - 1);
  // Do not leave half a surrogate pair.
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return `${cut}…`;
}

/**
 * The first and last lines of a long text within `max` characters, with a marker line saying how
 * many lines were left out. Lines longer than the budget are clipped. Returns the text unchanged when
 * it fits.
 */
export function headTail(text: string, max: number): { text: string; truncated: boolean } {
  if (text.length <= max) return { text, truncated: false };
  const lines = text.split('\n');
  const marker = (n: number) =>
    `… ${n} line${n === 1 ? '' : 's'} omitted (whole text in the attached file) …`;
  const budget = max - marker(lines.length).length - 2;
  if (budget < 20) return { text: clip(text, max), truncated: true };
  const headBudget = Math.floor(budget * 0.4);
  const head: string[] = [];
  const tail: string[] = [];
  let used = 0;
  let i = 0;
  let j = lines.length - 1;
  // Head: up to 40% of the budget; tail: the rest (the end of a log is what people read).
  while (i <= j) {
    const l = lines[i] as string;
    if (used + l.length + 1 > headBudget) break;
    head.push(l);
    used += l.length + 1;
    i++;
  }
  while (j >= i) {
    const l = lines[j] as string;
    if (used + l.length + 1 > budget) break;
    tail.unshift(l);
    used += l.length + 1;
    j--;
  }
  if (head.length === 0 && tail.length === 0) {
    // One enormous line: keep its end.
    const l = lines.at(-1) ?? '';
    tail.push(`…${l.slice(l.length - (budget - 1))}`);
    j = lines.length - 2;
  }
  const omitted = j - i + 1;
  const out = [...head, ...(omitted > 0 ? [marker(omitted)] : []), ...tail].join('\n');
  return { text: out.length <= max ? out : clip(out, max), truncated: true };
}

/** Slack mrkdwn escaping of text that comes from people or programs (&, <, >): see domain/text.ts. */
export const escapeMrkdwn = literal;

/** A code block whose content fits a section, fences included. */
export function codeBlock(
  text: string,
  max: number = SLACK_LIMITS.sectionText,
): { text: string; truncated: boolean } {
  // A snippet is raw text (a log, an error): inside a code block Slack still reads <!channel> and links.
  const inner = literal(text.replace(/```/g, "'''"));
  const fit = headTail(inner, max - 8);
  return { text: `\`\`\`\n${fit.text}\n\`\`\``, truncated: fit.truncated };
}

const mrkdwn = (text: string): Block => ({ type: 'mrkdwn', text });
const plain = (text: string, max: number): Block => ({
  type: 'plain_text',
  text: clip(text, max),
  emoji: true,
});

export function section(text: string, blockId?: string): Block {
  return {
    type: 'section',
    ...(blockId ? { block_id: blockId } : {}),
    text: mrkdwn(clip(text, SLACK_LIMITS.sectionText)),
  };
}

export function context(texts: string[], blockId?: string): Block {
  return {
    type: 'context',
    ...(blockId ? { block_id: blockId } : {}),
    elements: texts
      .slice(0, SLACK_LIMITS.contextElements)
      .map((t) => mrkdwn(clip(t, SLACK_LIMITS.sectionText))),
  };
}

export function button(
  actionId: ActionId,
  label: string,
  value: string,
  style?: 'primary' | 'danger',
): Block {
  return {
    type: 'button',
    action_id: actionId,
    text: plain(label, SLACK_LIMITS.buttonText),
    value: clip(value, SLACK_LIMITS.buttonValue),
    ...(style ? { style } : {}),
  };
}

/** Slack's date formatting token: each reader sees their own time zone; the fallback is UTC. */
export function slackDate(at: number): string {
  const fallback = `${new Date(at).toISOString().replace('T', ' ').slice(0, 16)} UTC`;
  return `<!date^${Math.floor(at / 1000)}^{date_short} {time}|${fallback}>`;
}

// ------------------------------------------------------------------ button values

/** A button's value: the release id and the revision the card was rendered from. */
export function buttonValue(id: string, rev: number): string {
  return `${id}@${rev}`;
}

export function parseButtonValue(
  value: string | undefined,
): { id: string; rev: number | undefined } | undefined {
  if (!value) return undefined;
  const at = value.lastIndexOf('@');
  if (at < 0) return { id: value, rev: undefined };
  const rev = Number(value.slice(at + 1));
  return { id: value.slice(0, at), rev: Number.isInteger(rev) ? rev : undefined };
}

/** The Show logs button of an alert carries what to read: app, environment, region, pod and the alert. */
export function alertLogsValue(t: AlertLogsTarget): string {
  return JSON.stringify([t.alertKey, t.app, t.environment, t.region, t.pod]);
}

export function parseAlertLogsValue(value: string | undefined): AlertLogsTarget | undefined {
  try {
    const v = JSON.parse(value ?? '') as unknown;
    if (!Array.isArray(v) || v.length !== 5 || !v.every((x) => typeof x === 'string')) return undefined;
    const [alertKey, app, environment, region, pod] = v as string[];
    return { alertKey, app, environment, region, pod } as AlertLogsTarget;
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------ the release card

const STATE_ICON: Record<ReleaseState, string> = {
  requested: ':hourglass_flowing_sand:',
  queued: ':hourglass:',
  'awaiting-approval': ':raised_hand:',
  approved: ':white_check_mark:',
  building: ':hammer_and_wrench:',
  syncing: ':arrows_counterclockwise:',
  deploying: ':rocket:',
  verifying: ':mag:',
  succeeded: ':large_green_circle:',
  rejected: ':no_entry:',
  expired: ':alarm_clock:',
  paused: ':double_vertical_bar:',
  failed: ':red_circle:',
  'rolling-back': ':rewind:',
  'rolled-back': ':leftwards_arrow_with_hook:',
  aborted: ':octagonal_sign:',
};

/** Which buttons a card shows in a state. Permissions are checked on the click, not here. */
export function buttonsFor(r: Release): ActionId[] {
  switch (r.state) {
    case 'awaiting-approval':
      return ['approve', 'reject'];
    case 'deploying':
      // A hold (analysis failed or could not judge) asks a person: Continue (promote) or Roll back.
      if (r.awaitingPromotion && r.hold) return ['promote', 'rollback', 'abort', 'logs'];
      return r.awaitingPromotion ? ['promote', 'pause', 'abort', 'logs'] : ['pause', 'abort', 'logs'];
    case 'approved':
    case 'building':
    case 'syncing':
      return ['pause', 'abort'];
    // From the rollout on, the app's pods there are what people want to read.
    case 'verifying':
      return ['pause', 'abort', 'logs'];
    case 'paused':
      return ['resume', 'abort', 'logs'];
    case 'failed':
      return ['rollback', 'logs'];
    case 'succeeded':
    case 'rolled-back':
      return ['logs'];
    case 'queued':
      return ['reject'];
    default:
      return [];
  }
}

const LABEL: Record<ActionId, [string, ('primary' | 'danger')?]> = {
  approve: ['Approve', 'primary'],
  reject: ['Reject', 'danger'],
  pause: ['Pause'],
  resume: ['Resume', 'primary'],
  abort: ['Abort', 'danger'],
  promote: ['Promote next batch', 'primary'],
  rollback: ['Roll back', 'danger'],
  logs: ['Show logs'],
  'alert-logs': ['Show logs'],
  silence: ['Silence'],
};

/** The plan in one line: approvals, batches, gate. */
export function planSummary(plan: Plan): string {
  const approvals = describeRequirements(approvalRequirements(plan), (g) => `*${g}*`);
  const b = plan.batches.value;
  const batches = `${b.length} batch${b.length === 1 ? '' : 'es'} (${b.map((x) => `${x.size}${x.manualPromotion ? ' ✋' : ''}`).join(' → ')})`;
  const gate = `gate ${plan.gate.pause.value}, ≤${plan.gate.maxRestarts.value} restart${plan.gate.maxRestarts.value === 1 ? '' : 's'}, then ${plan.gate.onFailure.value === 'rollback' ? 'roll back' : 'wait'} on failure`;
  const order = plan.regions.value.length > 1 ? ` · regions ${plan.regionOrder.value}` : '';
  return `${approvals} · ${batches} · ${gate}${order}`;
}

/** "which factor set what", in one line: settings grouped by the layer that set them (defaults left out). */
export function planSources(plan: Plan): string {
  const settings: [string, Setting<unknown>][] = [
    ['regions', plan.regions],
    ...approvalRequirements(plan).flatMap((r): [string, Setting<unknown>][] =>
      r.factor
        ? [[`approval by ${r.group.value}`, r.required]]
        : [
            ['approvals', r.required],
            ['approval group', r.group],
          ],
    ),
    ['self-approval', plan.approvals.allowSelfApproval],
    ['expiry', plan.approvals.expiresAfter],
    ['batches', plan.batches],
    ['gate', plan.gate.pause],
    ['restarts', plan.gate.maxRestarts],
    ['on failure', plan.gate.onFailure],
    ['pre-warm', plan.skip.prewarm],
    ['sync check', plan.skip.syncVerification],
    ['priority', plan.priority],
    ['window', plan.releaseWindowBypass],
    ['promotion rule', plan.promotionRule],
    ['region order', plan.regionOrder],
  ];
  const by = new Map<string, string[]>();
  for (const [name, s] of settings) {
    if (s.source === 'default') continue;
    by.set(s.source, [...(by.get(s.source) ?? []), name]);
  }
  const parts = [...by].map(([source, names]) => `${source}: ${names.join(', ')}`);
  const factors = plan.factors.length ? `factors ${plan.factors.join(', ')}` : 'no factors';
  return parts.length ? `${factors} · set by ${parts.join(' · ')}` : `${factors} · all defaults`;
}

export function batchLine(r: Release): string | undefined {
  const b = r.batch;
  if (!b) return undefined;
  return `${b.region} batch ${b.index}/${b.total} · ${b.pods}/${b.replicas} pods`;
}

/** The release's status card: the parent message of its thread, edited in place as it moves. */
export function renderCard(r: Release): Rendered {
  const blocks: Block[] = [];
  const title = `${r.app} ${r.version} → ${r.environment}`;
  blocks.push({ type: 'header', block_id: 'title', text: plain(title, SLACK_LIMITS.headerText) });
  const fields = [
    `*App*\n${r.app}`,
    `*Version*\n${r.version}`,
    `*Environment*\n${r.environment}`,
    `*Regions*\n${r.regions.join(' → ') || '—'}`,
    `*State*\n${STATE_ICON[r.state]} ${r.state}${r.state === 'deploying' && r.awaitingPromotion ? ' (waiting to promote)' : ''}`,
    `*Requested by*\n<@${r.requestedBy}> ${slackDate(r.requestedAt)}`,
  ].map((t) => mrkdwn(clip(t, SLACK_LIMITS.fieldText)));
  blocks.push({ type: 'section', block_id: 'facts', fields });
  blocks.push(section(`*Plan* ${planSummary(r.plan)}`, 'plan'));
  blocks.push(context([planSources(r.plan)], 'sources'));
  const batch = batchLine(r);
  if (batch) {
    const where =
      r.progress && Object.keys(r.progress).length
        ? ` (done: ${Object.entries(r.progress)
            .map(([region, n]) => `${region} ${n}`)
            .join(', ')})`
        : '';
    blocks.push(
      section(
        `*Progress* ${batch}${where}${r.awaitingPromotion ? (r.hold ? `\n:raised_hand: Waiting for a person: ${r.hold}. Continue or roll back.` : '\n:raised_hand: Waiting for someone to promote the next batch.') : ''}`,
        'progress',
      ),
    );
  }
  const requirements = approvalRequirements(r.plan);
  const need = requirements.reduce((n, q) => n + q.required.value, 0);
  if (need > 0) {
    // Each approval under the requirement it counts toward.
    const count = countApprovals(r.plan, r.approvals);
    const at = new Map(r.approvals.map((a) => [a.by, a.at]));
    const lines = requirements.flatMap((q, i) =>
      (count.counted[i] ?? []).map(
        (by) =>
          `:white_check_mark: Approved by <@${by}> at ${slackDate(at.get(by) ?? 0)}${requirements.length > 1 ? ` (for *${q.group.value}*)` : ''}`,
      ),
    );
    if (r.state === 'awaiting-approval' && count.missing.length) {
      const left = count.missing.map((m) => ({
        ...m.requirement,
        required: { ...m.requirement.required, value: m.count },
      }));
      lines.push(`Waiting for ${describeRequirements(left, (g) => `*${g}*`)}.`);
    }
    if (lines.length)
      blocks.push(section(`*Approvals* ${count.total}/${need}\n${lines.join('\n')}`, 'approvals'));
  }
  if (r.rejection) {
    blocks.push(
      section(
        `:no_entry: Rejected by <@${r.rejection.by}> at ${slackDate(r.rejection.at)}: ${escapeMrkdwn(r.rejection.reason)}`,
        'rejection',
      ),
    );
  }
  if (r.error && r.state !== 'succeeded') {
    blocks.push(
      section(`:warning: *Error* ${codeBlock(r.error, SLACK_LIMITS.sectionText - 20).text}`, 'error'),
    );
  }
  const actions = buttonsFor(r);
  if (actions.length) {
    const value = buttonValue(r.id, r.rev);
    blocks.push({
      type: 'actions',
      block_id: 'actions',
      elements: actions.map((a) =>
        button(a, a === 'promote' && r.hold ? 'Continue' : LABEL[a][0], value, LABEL[a][1]),
      ),
    });
  }
  blocks.push(context([`${r.id} · ${r.state} since ${slackDate(r.stateSince)}`], 'footer'));
  return { text: clip(oneLine(r), SLACK_LIMITS.messageText), blocks };
}

// ------------------------------------------------------------------ replies, messages, ephemerals

/**
 * A thread reply or a plain message: the text (mrkdwn, split over sections when long), an optional
 * snippet as a code block (first and last lines), and — when anything did not fit — the whole as a file.
 */
export function renderText(
  text: string,
  extra: { snippet?: string; file?: { name: string; text: string }; fileName?: string } = {},
): Rendered {
  const blocks: Block[] = [];
  // Long text: up to 5 sections of prose, then a head/tail of the rest, and the whole as a file.
  const maxProseBlocks = extra.snippet ? 3 : 5;
  let cut = false;
  const chunks = splitText(text, SLACK_LIMITS.sectionText);
  if (chunks.length > maxProseBlocks) {
    cut = true;
    for (const c of chunks.slice(0, maxProseBlocks - 1)) blocks.push(section(c));
    const rest = chunks.slice(maxProseBlocks - 1).join('\n');
    blocks.push(section(headTail(rest, SLACK_LIMITS.sectionText).text));
  } else {
    for (const c of chunks) blocks.push(section(c));
  }
  if (extra.snippet) {
    const cb = codeBlock(extra.snippet);
    blocks.push(section(cb.text));
    cut ||= cb.truncated;
  }
  const whole =
    extra.file ??
    (cut
      ? { name: extra.fileName ?? 'ferry.txt', text: extra.snippet ? `${text}\n\n${extra.snippet}` : text }
      : undefined);
  return {
    text: clip(text, SLACK_LIMITS.messageText),
    blocks: blocks.slice(0, SLACK_LIMITS.blocks),
    ...(whole ? { file: whole } : {}),
  };
}

/** Splits text at line breaks into chunks of at most `max` characters (a longer line is cut). */
export function splitText(text: string, max: number): string[] {
  if (text.trim().length === 0) return [' '];
  const out: string[] = [];
  let cur: string | undefined;
  for (const line of text.split('\n')) {
    let l = line;
    while (l.length > max) {
      if (cur !== undefined) out.push(cur);
      cur = undefined;
      out.push(l.slice(0, max));
      l = l.slice(max);
    }
    if (cur === undefined) cur = l;
    else if (cur.length + l.length + 1 > max) {
      out.push(cur);
      cur = l;
    } else cur = `${cur}\n${l}`;
  }
  if (cur !== undefined && (cur.length > 0 || out.length === 0)) out.push(cur);
  // Slack refuses an empty section text.
  return out.map((c) => (c.trim().length ? c : ' '));
}

/** An answer shown to one person: at most 50 blocks whatever the length (the rest is cut with a note). */
export function renderEphemeral(text: string, ok = true): Rendered {
  const chunks = splitText(text, SLACK_LIMITS.sectionText);
  const room = SLACK_LIMITS.blocks - 1;
  const blocks = chunks.slice(0, room).map((c, i) => section(i === 0 && !ok ? `:warning: ${c}` : c));
  if (chunks.length > room) blocks.push(context([`… ${chunks.length - room} more parts left out.`]));
  return { text: clip(text, SLACK_LIMITS.messageText), blocks };
}

// ------------------------------------------------------------------ alerts

export function renderAlert(a: Extract<Outbound, { kind: 'alert' }>): Rendered {
  const blocks: Block[] = [
    {
      type: 'header',
      block_id: 'alert-title',
      text: plain(`:rotating_light: ${a.title}`, SLACK_LIMITS.headerText),
    },
  ];
  // Ten fields a section: an OOM alert has more (the memory history is the last), in up to three sections.
  const fields = a.fields
    .slice(0, SLACK_LIMITS.fields * 3)
    .map(([k, v]) => mrkdwn(clip(`*${k}*\n${literal(v)}`, SLACK_LIMITS.fieldText)));
  for (let i = 0; i < fields.length; i += SLACK_LIMITS.fields) {
    blocks.push({
      type: 'section',
      block_id: i === 0 ? 'alert-fields' : `alert-fields-${i / SLACK_LIMITS.fields + 1}`,
      fields: fields.slice(i, i + SLACK_LIMITS.fields),
    });
  }
  let file: Rendered['file'];
  if (a.snippet) {
    const cb = codeBlock(a.snippet);
    blocks.push(section(cb.text, 'alert-snippet'));
    if (cb.truncated) file = { name: `${a.key.replace(/[^\w.-]+/g, '_').slice(0, 80)}.log`, text: a.snippet };
  }
  blocks.push(
    context(
      [
        a.count > 1
          ? `Seen ${a.count} times${a.releaseId ? ` · release ${a.releaseId}` : ''}`
          : `First seen${a.releaseId ? ` · release ${a.releaseId}` : ''}`,
      ],
      'alert-count',
    ),
  );
  // Roll back only while a release of the app and environment is in flight (who may is checked on click).
  blocks.push({
    type: 'actions',
    block_id: 'alert-actions',
    elements: [
      ...(a.logs ? [button('alert-logs', 'Show logs', alertLogsValue(a.logs))] : []),
      ...(a.releaseId ? [button('rollback', 'Roll back', a.releaseId, 'danger')] : []),
      button('silence', 'Silence', a.silenceKey),
    ],
  });
  const text = `${a.title}${a.count > 1 ? ` (×${a.count})` : ''}`;
  return { text: clip(text, SLACK_LIMITS.messageText), blocks, ...(file ? { file } : {}) };
}
