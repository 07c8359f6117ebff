// Block Kit rendering at Slack's limits: whatever the domain says, the
// messages stay postable (validated with the emulator's Block Kit checker,
// which applies Slack's documented limits), and nothing that was cut is lost —
// it goes into a file.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { validateBlocks } from '../../dev/slack-emulator/blocks.ts';
import {
  alertLogsValue,
  type Block,
  buttonsFor,
  buttonValue,
  codeBlock,
  headTail,
  parseAlertLogsValue,
  parseButtonValue,
  renderAlert,
  renderCard,
  renderEphemeral,
  renderText,
  SLACK_LIMITS,
  splitText,
} from '../../src/chat/slack/render.ts';
import { planRelease } from '../../src/domain/plan.ts';
import { type Release, STATES } from '../../src/domain/release.ts';
import { exampleConfig } from '../support/config.ts';

function release(patch: Partial<Release> = {}, factors: string[] = []): Release {
  const p = planRelease({ app: 'payments', version: 'v2', environment: 'prod', factors }, exampleConfig());
  if (!p.ok) throw new Error(p.error.message);
  return {
    id: 'r7',
    app: 'payments',
    version: 'v2',
    environment: 'prod',
    regions: p.plan.regions.value,
    factors,
    plan: p.plan,
    requestedBy: 'U_ALICE',
    requestedAt: Date.UTC(2026, 0, 2, 10, 0),
    state: 'awaiting-approval',
    stateSince: Date.UTC(2026, 0, 2, 10, 0),
    approvals: [],
    rev: 3,
    ...patch,
  };
}

const texts = (blocks: Block[]): string[] =>
  blocks.flatMap((b) => {
    const out: string[] = [];
    const t = b['text'] as { text?: string } | undefined;
    if (t?.text) out.push(t.text);
    for (const f of (b['fields'] as { text: string }[] | undefined) ?? []) out.push(f.text);
    for (const e of (b['elements'] as { text?: unknown }[] | undefined) ?? [])
      if (typeof e.text === 'string') out.push(e.text);
    return out;
  });

function expectPostable(blocks: Block[]): void {
  expect(validateBlocks(blocks)).toEqual([]);
  expect(blocks.length).toBeLessThanOrEqual(SLACK_LIMITS.blocks);
  for (const t of texts(blocks)) expect(t.length).toBeLessThanOrEqual(SLACK_LIMITS.sectionText);
}

const lines = (n: number, width = 80) =>
  Array.from({ length: n }, (_, i) => `line ${i + 1} ${'x'.repeat(width)}`).join('\n');

describe('headTail', () => {
  it('leaves text that fits alone', () => {
    expect(headTail('short', 3000)).toEqual({ text: 'short', truncated: false });
    const exact = 'a'.repeat(3000);
    expect(headTail(exact, 3000)).toEqual({ text: exact, truncated: false });
  });

  it('keeps the first and last lines of a long log within the limit, and says what it left out', () => {
    const log = lines(10_000);
    const r = headTail(log, 3000);
    expect(r.truncated).toBe(true);
    expect(r.text.length).toBeLessThanOrEqual(3000);
    expect(r.text.startsWith('line 1 ')).toBe(true);
    expect(r.text.endsWith(`line 10000 ${'x'.repeat(80)}`)).toBe(true);
    expect(r.text).toMatch(/… \d+ lines omitted/);
  });

  it('copes with one enormous line', () => {
    const r = headTail('y'.repeat(50_000), 3000);
    expect(r.text.length).toBeLessThanOrEqual(3000);
    expect(r.truncated).toBe(true);
  });

  it('never exceeds the limit (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20_000 }), fc.integer({ min: 1, max: 5000 }), (s, max) => {
        expect(headTail(s, max).text.length).toBeLessThanOrEqual(max);
      }),
    );
  });
});

describe('codeBlock and splitText', () => {
  it('fits fences included, and neutralises fences in the content', () => {
    const cb = codeBlock(`\`\`\`\n${lines(5000)}`);
    expect(cb.text.length).toBeLessThanOrEqual(3000);
    expect(cb.text.startsWith('```\n')).toBe(true);
    expect(cb.text.endsWith('\n```')).toBe(true);
    expect(cb.text.slice(4, -4)).not.toContain('```');
  });

  it('splits at line breaks into chunks that fit, losing nothing', () => {
    const t = lines(300);
    const parts = splitText(t, 3000);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(3000);
    expect(parts.join('\n')).toBe(t);
  });

  it('loses nothing for any text (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 5000, unit: fc.constantFrom('a', 'b', '\n', ' ') }),
        fc.integer({ min: 5, max: 300 }),
        (t, max) => {
          fc.pre(t.trim().length > 0);
          const parts = splitText(t, max);
          for (const p of parts) expect(p.length).toBeLessThanOrEqual(max);
          expect(parts.join('\n').replace(/\s+/g, '')).toBe(t.replace(/\s+/g, ''));
        },
      ),
    );
  });
});

describe('renderText (thread replies)', () => {
  it('is one section for ordinary text', () => {
    const r = renderText('Built payments:v2-prod.');
    expect(r.blocks).toHaveLength(1);
    expect(r.file).toBeUndefined();
    expectPostable(r.blocks);
  });

  it('text of exactly 3,000 characters is one section, 3,001 two', () => {
    expect(renderText('a'.repeat(3000)).blocks).toHaveLength(1);
    expect(renderText('a'.repeat(3001)).blocks).toHaveLength(2);
  });

  it('a 1 MB text stays postable and the whole is attached as a file', () => {
    const big = lines(12_000);
    const r = renderText(big, { fileName: 'r7.txt' });
    expectPostable(r.blocks);
    expect(r.text.length).toBeLessThanOrEqual(SLACK_LIMITS.messageText);
    expect(r.file).toEqual({ name: 'r7.txt', text: big });
  });

  it('a long snippet shows its first and last lines in a code block; the file has all of it', () => {
    const snippet = lines(20_000, 40);
    const r = renderText('Logs of payments in eu-west:', { snippet });
    expectPostable(r.blocks);
    const code = texts(r.blocks).find((t) => t.startsWith('```')) as string;
    expect(code).toContain('line 1 ');
    expect(code).toContain('line 20000 ');
    expect(r.file?.text).toContain(snippet);
  });

  it('an explicit file is passed on as is', () => {
    const r = renderText('Logs:', { snippet: 'a\nb', file: { name: 'app.log', text: 'whole' } });
    expect(r.file).toEqual({ name: 'app.log', text: 'whole' });
  });

  it('is postable for any text and snippet (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30_000 }), fc.option(fc.string({ maxLength: 30_000 })), (t, s) => {
        const r = renderText(t, s === null ? {} : { snippet: s });
        expect(r.blocks.length).toBeLessThanOrEqual(50);
        for (const x of texts(r.blocks)) expect(x.length).toBeLessThanOrEqual(3000);
        expect(r.text.length).toBeLessThanOrEqual(4000);
      }),
      { numRuns: 60 },
    );
  });
});

describe('renderEphemeral', () => {
  it('never more than 50 blocks, whatever the length', () => {
    const r = renderEphemeral(lines(20_000));
    expectPostable(r.blocks);
    expect(r.blocks).toHaveLength(50);
    expect(JSON.stringify(r.blocks.at(-1))).toMatch(/more parts left out/);
  });

  it('marks a refusal', () => {
    expect(texts(renderEphemeral('You may not.', false).blocks)[0]).toMatch(/^:warning: You may not\./);
  });
});

describe('renderCard', () => {
  it('shows the plan, who set what, and Approve/Reject while waiting for approval', () => {
    const r = renderCard(release());
    expectPostable(r.blocks);
    const all = texts(r.blocks).join('\n');
    expect(all).toContain('1 approval from *approvers*');
    expect(all).toMatch(/3 batches \(1 → 50% → 100%\)/);
    expect(all).toContain('environment prod');
    expect(all).toContain('Waiting for 1 approval from *approvers*');
    const actions = r.blocks.find((b) => b['type'] === 'actions') as Block;
    const els = actions['elements'] as { action_id: string; value: string; style?: string }[];
    expect(els.map((e) => [e.action_id, e.style])).toEqual([
      ['approve', 'primary'],
      ['reject', 'danger'],
    ]);
    expect(els[0]?.value).toBe('r7@3');
    expect(r.blocks[0]).toMatchObject({ type: 'header' });
  });

  it('shows each approval requirement of a factor with an authority, and who counted where', () => {
    const at = Date.UTC(2026, 0, 2, 11, 30);
    const r = renderCard(
      release({ approvals: [{ by: 'U_CAROL', at, groups: ['approvers', 'emergency-approvers'] }] }, [
        'emergency',
      ]),
    );
    expectPostable(r.blocks);
    const all = texts(r.blocks).join('\n');
    expect(all).toContain('1 approval from *approvers* and 1 from *emergency-approvers*');
    expect(all).toContain('*Approvals* 1/2');
    expect(all).toMatch(/Approved by <@U_CAROL> at .* \(for \*approvers\*\)/);
    expect(all).toContain('Waiting for 1 approval from *emergency-approvers*.');
  });

  it('names the factor that set a setting', () => {
    const r = renderCard(release({}, ['degraded']));
    expect(texts(r.blocks).join('\n')).toMatch(/factor degraded/);
  });

  it('shows approvals with who and when, batch progress, rejection and error', () => {
    const at = Date.UTC(2026, 0, 2, 11, 30);
    const r = renderCard(
      release({
        state: 'deploying',
        approvals: [{ by: 'U_BOB', at }],
        batch: { region: 'eu-west', index: 2, total: 3, pods: 2, replicas: 4 },
        awaitingPromotion: true,
      }),
    );
    const all = texts(r.blocks).join('\n');
    expect(all).toContain(
      `Approved by <@U_BOB> at <!date^${at / 1000}^{date_short} {time}|2026-01-02 11:30 UTC>`,
    );
    expect(all).toContain('eu-west batch 2/3 · 2/4 pods');
    const ids = (
      (r.blocks.find((b) => b['type'] === 'actions')?.['elements'] ?? []) as { action_id: string }[]
    ).map((e) => e.action_id);
    expect(ids).toEqual(['promote', 'pause', 'abort', 'logs']);

    const rej = renderCard(
      release({ state: 'rejected', rejection: { by: 'U_BOB', reason: '<!channel> & "x"', at } }),
    );
    expect(texts(rej.blocks).join('\n')).toContain('&lt;!channel&gt; &amp; "x"');
    expect(rej.blocks.some((b) => b['type'] === 'actions')).toBe(false);

    const failed = renderCard(release({ state: 'failed', error: 'E'.repeat(10_000) }));
    expectPostable(failed.blocks);
    expect(failed.blocks.find((b) => b['block_id'] === 'error')).toBeTruthy();
  });

  it('has the right buttons in every state', () => {
    const expected: Partial<Record<string, string[]>> = {
      'awaiting-approval': ['approve', 'reject'],
      building: ['pause', 'abort'],
      syncing: ['pause', 'abort'],
      // Show logs once the app's pods run the release (the rollout on)
      deploying: ['pause', 'abort', 'logs'],
      verifying: ['pause', 'abort', 'logs'],
      paused: ['resume', 'abort', 'logs'],
      failed: ['rollback', 'logs'],
      succeeded: ['logs'],
      rejected: [],
      aborted: [],
      'rolled-back': ['logs'],
    };
    for (const state of STATES) {
      const r = release({ state });
      if (expected[state]) expect(buttonsFor(r)).toEqual(expected[state]);
      expectPostable(renderCard(r).blocks);
    }
  });

  it('stays within limits with absurd inputs', () => {
    const r = renderCard(
      release({
        id: `r${'9'.repeat(3000)}`,
        version: 'v'.repeat(500),
        regions: Array.from({ length: 400 }, (_, i) => `region-${i}`),
        approvals: Array.from({ length: 200 }, (_, i) => ({ by: `U_${i}`, at: 0 })),
        rejection: { by: 'U_BOB', reason: 'r'.repeat(20_000), at: 0 },
        error: 'e'.repeat(20_000),
      }),
    );
    expectPostable(r.blocks);
    const header = r.blocks[0] as unknown as { text: { text: string } };
    expect(header.text.text.length).toBeLessThanOrEqual(150);
    const actions = r.blocks.find((b) => b['type'] === 'actions') as Block;
    for (const e of actions['elements'] as { value: string }[])
      expect(e.value.length).toBeLessThanOrEqual(2000);
    expect(r.text.length).toBeLessThanOrEqual(4000);
  });
});

describe('button values', () => {
  it('round-trip the release id and the card revision', () => {
    expect(parseButtonValue(buttonValue('r12', 7))).toEqual({ id: 'r12', rev: 7 });
    expect(parseButtonValue('r12')).toEqual({ id: 'r12', rev: undefined });
    expect(parseButtonValue(undefined)).toBeUndefined();
  });
});

describe('renderAlert', () => {
  const alert = {
    kind: 'alert' as const,
    key: 'oom/eu-west/payments/payments/app',
    channel: 'C_PAY_ALERTS',
    title: 'OOM kill: payments/app in eu-west',
    fields: [
      ['Memory limit', '256Mi'],
      ['Restarts', '3'],
    ] as [string, string][],
    snippet: lines(10),
    count: 1,
    silenceKey: 'oom/eu-west/payments/payments/app',
  };

  it('shows title, fields, last lines and a Silence button', () => {
    const r = renderAlert(alert);
    expectPostable(r.blocks);
    expect(r.file).toBeUndefined();
    const actions = r.blocks.find((b) => b['type'] === 'actions') as Block;
    expect(actions['elements']).toEqual([
      expect.objectContaining({ action_id: 'silence', value: alert.silenceKey }),
    ]);
  });

  it('an OOM alert: Show logs with its pod, Roll back only while a release is in flight, Silence', () => {
    const logs = {
      alertKey: 'a1',
      app: 'payments',
      environment: 'prod',
      region: 'eu-west',
      pod: 'payments-7d9-x2',
    };
    const idle = renderAlert({ ...alert, logs });
    expectPostable(idle.blocks);
    const buttons = (r: ReturnType<typeof renderAlert>) =>
      ((r.blocks.find((b) => b['type'] === 'actions') as Block)['elements'] as Record<string, unknown>[]).map(
        (e) => [e['action_id'], e['value']],
      );
    expect(buttons(idle)).toEqual([
      ['alert-logs', alertLogsValue(logs)],
      ['silence', alert.silenceKey],
    ]);
    expect(parseAlertLogsValue(alertLogsValue(logs))).toEqual(logs);
    expect(parseAlertLogsValue('["a","b"]')).toBeUndefined();
    expect(parseAlertLogsValue('not json')).toBeUndefined();
    const inFlight = renderAlert({ ...alert, logs, releaseId: 'r9' });
    expectPostable(inFlight.blocks);
    expect(buttons(inFlight).map(([id]) => id)).toEqual(['alert-logs', 'rollback', 'silence']);
    expect(buttons(inFlight)[1]?.[1]).toBe('r9');
    expect(parseButtonValue(buttons(inFlight)[1]?.[1] as string)).toEqual({ id: 'r9', rev: undefined });
  });

  it('shows every field of an OOM alert, past the ten of one section (the memory history is the last)', () => {
    const fields = Array.from({ length: 13 }, (_, i) => [`k${i}`, `v${i}`] as [string, string]);
    fields.push(['Memory history', 'not available: no Prometheus is configured']);
    const r = renderAlert({ ...alert, fields });
    expectPostable(r.blocks);
    const all = JSON.stringify(r.blocks);
    expect(all).toContain('*Memory history*\\nnot available: no Prometheus is configured');
    expect(all).toContain('*k12*');
  });

  it('counts repeats and stays within limits with many fields and a huge snippet', () => {
    const r = renderAlert({
      ...alert,
      title: 'T'.repeat(500),
      count: 41,
      fields: Array.from({ length: 30 }, (_, i) => [`k${i}`, 'v'.repeat(5000)] as [string, string]),
      snippet: lines(50_000),
    });
    expectPostable(r.blocks);
    expect(r.text).toContain('×41');
    expect(r.file?.text.length).toBeGreaterThan(3000);
    expect(
      ((r.blocks.find((b) => b['block_id'] === 'alert-fields')?.['fields'] ?? []) as unknown[]).length,
    ).toBe(10);
  });
});
