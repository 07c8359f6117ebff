// Point 6 of issue 13: text that does not come from Ferry is never Slack
// markup. `<!channel>` would notify everyone; `<https://evil.example|the
// runbook>` is a link whose text hides where it goes. Each surface that puts
// such text into a message is checked here; the thread reply and the card of
// a real rejection are checked through the bot in
// test/integration/hostile-input.test.ts.
import { describe, expect, it } from 'vitest';
import { describeRelease, handleCommand } from '../../commands/handle.ts';
import type { CommandServices } from '../../commands/handler.ts';
import { parseCommand } from '../../commands/index.ts';
import { safeFileName } from '../../src/chat/slack/delivery.ts';
import { type Block, renderAlert, renderCard, renderText } from '../../src/chat/slack/render.ts';
import { rejectModal } from '../../src/chat/slack/views.ts';
import { explain } from '../../src/cli/main.ts';
import { planRelease } from '../../src/domain/plan.ts';
import type { Release } from '../../src/domain/release.ts';
import { echo, literal, plainText } from '../../src/domain/text.ts';
import { exampleConfig } from '../support/config.ts';

const CHANNEL = '<!channel>';
const LINK = '<https://evil.example|the runbook>';
const HOSTILE = `${CHANNEL} see ${LINK} & more`;
const ESCAPED = '&lt;!channel&gt; see &lt;https://evil.example|the runbook&gt; &amp; more';
const config = exampleConfig();

/** Slack reads <…> as markup: none may be left from the hostile text. */
function expectNoMarkup(text: string): void {
  expect(text).not.toContain(CHANNEL);
  expect(text).not.toContain('<https://evil.example');
}

const allText = (blocks: Block[]): string => JSON.stringify(blocks);

function release(patch: Partial<Release> = {}): Release {
  const p = planRelease({ app: 'payments', version: 'v2', environment: 'prod', factors: [] }, config);
  if (!p.ok) throw new Error(p.error.message);
  return {
    id: 'r7',
    app: 'payments',
    version: 'v2',
    environment: 'prod',
    regions: p.plan.regions.value,
    factors: [],
    plan: p.plan,
    requestedBy: 'U_ALICE',
    requestedAt: Date.UTC(2026, 0, 2, 10, 0),
    state: 'rejected',
    stateSince: Date.UTC(2026, 0, 2, 10, 0),
    approvals: [],
    rev: 3,
    ...patch,
  };
}

describe('user text is escaped on every surface', () => {
  it('literal and echo escape &, < and >; echo cuts very long words', () => {
    expect(literal(HOSTILE)).toBe(ESCAPED);
    expect(echo(CHANNEL)).toBe('"&lt;!channel&gt;"');
    expect(echo('x'.repeat(10_000)).length).toBeLessThan(70);
    expect(plainText(literal(HOSTILE))).toBe(HOSTILE);
  });

  it.each([
    `/release ${CHANNEL} v2`,
    `/release payments ${LINK}`,
    `/release payments v2 ${CHANNEL}`,
    `/release payments v2 to ${CHANNEL}`,
    `/release payments v2 in ${CHANNEL}`,
    `/release help ${LINK}`,
    `/release ${CHANNEL}`,
    `/release reject ${CHANNEL} because`,
    `/release logs payments file ${CHANNEL}`,
    `/release logs payments lines ${CHANNEL}`,
    `/release logs payments since ${CHANNEL}`,
    `/release logs payments ${CHANNEL} x`,
  ])('a parse error echoing the input: %s', (text) => {
    const parsed = parseCommand(text, { config });
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expectNoMarkup(parsed.error.message);
    expect(parsed.error.message).toContain('&lt;');
    // The usage line's <app> is literal text too.
    if (parsed.error.usage) expect(parsed.error.message).not.toMatch(/Usage: .*<[a-z]/);
  });

  it('help lists the usage lines escaped', async () => {
    const services = { config: () => config } as CommandServices;
    for (const text of ['/release help', '/release help logs']) {
      const parsed = parseCommand(text, { config });
      if (!parsed.ok) throw new Error(parsed.error.message);
      const reply = await handleCommand(parsed.command, { userId: 'U_ALICE', channel: 'C1' }, services);
      expect(reply.text).toContain('&lt;app&gt;');
      expect(reply.text).not.toMatch(/<app>|<version>/);
    }
  });

  it('status of a rejected or failed release: reason and error escaped', () => {
    const text = describeRelease(
      release({ rejection: { by: 'U_BOB', at: 1, reason: HOSTILE }, error: `boom ${CHANNEL}` }),
    );
    expectNoMarkup(text);
    expect(text).toContain(ESCAPED);
    expect(text).toContain('boom &lt;!channel&gt;');
  });

  it('the card: rejection reason and error escaped', () => {
    const card = renderCard(
      release({
        rejection: { by: 'U_BOB', at: 1, reason: HOSTILE },
        error: `gate: ${LINK}`,
        state: 'failed',
      }),
    );
    expectNoMarkup(allText(card.blocks));
    expect(allText(card.blocks)).toContain(ESCAPED);
  });

  it('a thread reply with a snippet (a log): the snippet is escaped inside its code block', () => {
    const r = renderText('Output of payments', { snippet: `line 1\nERROR ${CHANNEL} ${LINK}\nline 3` });
    expectNoMarkup(allText(r.blocks));
    expect(allText(r.blocks)).toContain('ERROR &lt;!channel&gt;');
  });

  it('an alert: fields from the cluster are escaped', () => {
    const r = renderAlert({
      kind: 'alert',
      key: 'k',
      channel: 'C1',
      title: 'OOM kill',
      fields: [['Pod', `p ${CHANNEL}`]],
      snippet: `killed ${LINK}`,
      count: 1,
      silenceKey: 'oom/eu-west/payments/payments/payments',
    });
    expectNoMarkup(allText(r.blocks));
  });

  it('the reject modal escapes what it names', () => {
    // Names are checked against the config, but the modal does not rely on it.
    const modal = rejectModal(release({ app: `a${CHANNEL}`, state: 'awaiting-approval' }), 'C1');
    expectNoMarkup(JSON.stringify(modal.blocks));
  });

  it('file names and titles are plain file names', () => {
    expect(safeFileName(`payments-prod-eu-west-${CHANNEL}-${LINK}.log`)).toMatch(/^[\w.-]+$/);
    expect(safeFileName('r12.txt')).toBe('r12.txt');
  });

  it('the CLI shows the characters, not the escapes', () => {
    const err: string[] = [];
    explain('/release payments', config, false, { out: () => {}, err: (l) => err.push(l) });
    expect(err.join('\n')).toContain('Usage: /release <app> <version>');
  });
});
