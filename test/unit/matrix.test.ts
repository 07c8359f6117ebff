// The Matrix adapter's pure parts: HTML with a plain-text fallback in which
// no user text is ever markup; the release card; `!release` in a message;
// who a Matrix user is in Ferry; people and rooms in the config (additive:
// Slack-only configs load as before).
import fc from 'fast-check';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { pngSize } from '../../src/chat/matrix/client.ts';
import { whoIsIn } from '../../src/chat/matrix/delivery.ts';
import { commandText } from '../../src/chat/matrix/receiver.ts';
import {
  APPROVE_KEYS,
  asMatrixCommands,
  escapeHtml,
  fromFerryText,
  isReaction,
  LOGS_KEYS,
  ROLLBACK_KEYS,
  renderAlert,
  renderCard,
} from '../../src/chat/matrix/render.ts';
import { configSchema } from '../../src/domain/config.ts';
import { actorIdOf, personByActor, personOnPlatform, platformIdOf } from '../../src/domain/people.ts';
import { planRelease } from '../../src/domain/plan.ts';
import { mayApprove, personOf } from '../../src/domain/policy.ts';
import type { Release } from '../../src/domain/release.ts';
import { literal } from '../../src/domain/text.ts';
import { exampleConfig } from '../support/config.ts';

const config = exampleConfig();
const who = whoIsIn(config);

/** The HTML with Ferry's own tags taken out: what is left must hold no markup at all. */
const outsideTags = (html: string) =>
  html.replace(/<\/?(strong|em|code|pre|br|ul|li)>|<a href="https:\/\/matrix\.to\/#\/[^"<>]*">|<\/a>/g, '');

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
    state: 'awaiting-approval',
    stateSince: Date.UTC(2026, 0, 2, 10, 0),
    approvals: [],
    rev: 3,
    ...patch,
  };
}

describe('Matrix HTML', () => {
  it('turns Ferry markup into tags and mentions into matrix.to links, with a plain body beside', () => {
    const m = fromFerryText('*Approved* by <@U_BOB>: `r7` _now_\n```\na < b && c\n```', who);
    expect(m.html).toBe(
      '<strong>Approved</strong> by <a href="https://matrix.to/#/%40bob%3Aferry.local">bob</a>: <code>r7</code> <em>now</em><br><pre><code>a &lt; b &amp;&amp; c</code></pre>',
    );
    expect(m.body).toBe('Approved by bob: `r7` now\n\na < b && c');
    expect(m.mentions).toEqual(['@bob:ferry.local']);
  });

  it('never lets user text become markup, whatever it is', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        const m = fromFerryText(`Rejected: ${literal(s)}`, who);
        expect(outsideTags(m.html ?? '')).not.toMatch(/[<>]/);
        // The plain body gives the text back as it was typed (markup characters aside).
        if (!/[*_`]/.test(s)) expect(m.body).toBe(`Rejected: ${s}`.trim());
      }),
      { numRuns: 500 },
    );
  });

  it('escapes even text that skipped literal(): a stray < or & is never a tag or a wrong entity', () => {
    const m = fromFerryText('<script>alert(1)</script> & <img src=x onerror=y> &amp;', who);
    expect(m.html).toBe('&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x onerror=y&gt; &amp;');
  });

  it('draws the card with how to approve, and the alert with every field escaped', () => {
    const card = renderCard(release({ rejection: undefined }), who);
    expect(card.body).toContain('payments v2 → prod');
    expect(card.body).toContain('requested by alice');
    expect(card.body).toContain('React ✅ to approve or ❌ to reject');
    expect(card.body).toContain('!release approve r7');
    const rejected = renderCard(
      release({ state: 'rejected', rejection: { by: 'U_BOB', at: 0, reason: '<b>no</b> & never' } }),
      who,
    );
    expect(rejected.body).toContain('Rejected by bob');
    expect(rejected.body).toContain('<b>no</b> & never');
    expect(outsideTags(rejected.html ?? '')).not.toMatch(/[<>]/);
    const failed = renderCard(release({ state: 'failed', error: '<img src=x> failed' }), who);
    expect(failed.html).toContain('&lt;img src=x&gt; failed');
    const alert = renderAlert({
      kind: 'alert',
      key: 'k',
      channel: 'C',
      title: 'OOM kill: payments <b>',
      fields: [['Pod', 'ns/<pod>']],
      snippet: 'line <1>',
      count: 2,
      silenceKey: 'oom/x',
    });
    expect(outsideTags(alert.content.html ?? '')).not.toMatch(/[<>]/);
    expect(alert.content.body).toContain('Pod: ns/<pod>');
    expect(escapeHtml('"&')).toBe('&quot;&amp;');
  });
});

describe("an alert's reactions", () => {
  const alert = {
    kind: 'alert' as const,
    key: 'k',
    title: 'OOM kill: payments',
    fields: [] as [string, string][],
    count: 1,
    silenceKey: 'oom/x',
  };
  it('are named in its text: the logs and roll back only when the alert offers them', () => {
    expect(renderAlert(alert).content.body).toContain('react 🔕 to silence for a while');
    expect(renderAlert(alert).content.body).not.toContain('↩️');
    const full = renderAlert({
      ...alert,
      releaseId: 'r7',
      logs: { alertKey: 'k', app: 'payments', environment: 'prod', region: 'eu-west', pod: 'p' },
    });
    expect(full.content.body).toContain(
      'react 📜 for the logs, ↩️ to roll back r7, 🔕 to silence for a while',
    );
    expect(full.content.html).toContain('↩️ to roll back r7');
  });
  it('match with or without the emoji variation selector', () => {
    expect(isReaction('↩', ROLLBACK_KEYS)).toBe(true);
    expect(isReaction('↩\uFE0F', ROLLBACK_KEYS)).toBe(true);
    expect(isReaction('✅', APPROVE_KEYS)).toBe(true);
    expect(isReaction('✅\uFE0F', APPROVE_KEYS)).toBe(true);
    expect(isReaction('📜', ROLLBACK_KEYS)).toBe(false);
    expect(isReaction('↪️', ROLLBACK_KEYS)).toBe(false);
    expect(isReaction('📜', LOGS_KEYS)).toBe(true);
  });
  it("charts carry their size: a PNG's width and height from its header, nothing for other bytes", () => {
    const png = PNG.sync.write(new PNG({ width: 123, height: 45 }));
    expect(pngSize(png)).toEqual({ w: 123, h: 45 });
    expect(pngSize(Buffer.from('not a png at all, just text'))).toBeUndefined();
  });
});

describe('!release in a message', () => {
  it("Ferry's answers name the Matrix command, not Slack's", () => {
    expect(asMatrixCommands('Release it to test first (`/release payments v2 to test`).')).toBe(
      'Release it to test first (`!release payments v2 to test`).',
    );
    expect(asMatrixCommands('/release help\nsee /releases and a/release')).toBe(
      '!release help\nsee /releases and a/release',
    );
  });

  it('is the command with its text; the quoted reply fallback is not part of it', () => {
    expect(commandText('!release payments v2', '!release')).toBe('payments v2');
    expect(commandText('!release', '!release')).toBe('');
    expect(commandText('> <@bob:x> earlier\n\n!release status', '!release')).toBe('status');
    expect(commandText('!releases payments', '!release')).toBeUndefined();
    expect(commandText('please !release payments v2', '!release')).toBeUndefined();
  });
});

describe('people on several platforms', () => {
  it('a person acts under one id, whichever platform they use: no self-approval across platforms', () => {
    expect(personOnPlatform(config, 'matrix', '@alice:ferry.local')).toEqual({
      name: 'alice',
      actorId: 'U_ALICE',
    });
    expect(personOnPlatform(config, 'slack', 'U_BOB')).toEqual({ name: 'bob', actorId: 'U_BOB' });
    expect(personOnPlatform(config, 'matrix', '@mallory:ferry.local')).toBeUndefined();
    expect(personOf(config, 'U_CAROL')).toBe('carol');
    // alice asked in Slack; her Matrix id maps to the same acting id, so she still may not approve.
    const asMatrixAlice = personOnPlatform(config, 'matrix', '@alice:ferry.local')?.actorId as string;
    expect(mayApprove(config, release(), asMatrixAlice).ok).toBe(false);
    expect(mayApprove(config, release(), 'U_BOB').ok).toBe(true);
    expect(personByActor(config, 'U_BOB')?.name).toBe('bob');
  });

  it('loads Slack-only people as before, Matrix-only people under their Matrix id, and refuses bad ids', () => {
    const base = structuredClone(rawExample());
    base.people = { alice: 'U_ALICE', bob: { matrix: '@bob:example.org' }, carol: { slack: 'U_CAROL' } };
    const parsed = configSchema.parse(base);
    expect(actorIdOf(parsed.people.alice as string)).toBe('U_ALICE');
    expect(actorIdOf(parsed.people.bob as never)).toBe('@bob:example.org');
    expect(platformIdOf(parsed.people.alice as string, 'matrix')).toBeUndefined();
    expect(platformIdOf(parsed.people.carol as never, 'slack')).toBe('U_CAROL');
    for (const bad of [{}, { matrix: 'bob' }, { matrix: '@bob' }, { irc: 'bob' }]) {
      const b = structuredClone(rawExample());
      b.people = { bob: bad };
      expect(configSchema.safeParse(b).success).toBe(false);
    }
    const room = structuredClone(rawExample());
    ((room.apps as Record<string, Record<string, unknown>>).payments as Record<string, unknown>).rooms = {
      releases: 'releases',
      alerts: '#a:x',
    };
    expect(configSchema.safeParse(room).success).toBe(false);
  });
});

/** The example config as plain data, before parsing (people and rooms as written). */
function rawExample(): Record<string, unknown> & { people: Record<string, unknown>; apps: unknown } {
  const c = exampleConfig() as unknown as Record<string, unknown> & {
    people: Record<string, unknown>;
    apps: unknown;
  };
  return JSON.parse(JSON.stringify(c));
}
