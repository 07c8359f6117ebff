// Point 4 of issue 13: JavaScript's built-in property names (constructor,
// __proto__, toString…), unicode, very long words, shell metacharacters and
// option-like words, in every slot of every command. The parser and the
// planner see at least 100,000 generated commands; none may throw, and every
// answer must be one a person can read. (The command handler, which needs the
// store, is fuzzed on a real Redis in test/integration/hostile-input.test.ts.)
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../commands/index.ts';
import { parseConfig } from '../../src/config/load.ts';
import { explainPlan, planRelease } from '../../src/domain/plan.ts';
import { exampleConfig } from '../support/config.ts';
import { BUILT_IN_NAMES, hostileCommand, unreadable } from '../support/hostile.ts';

const config = exampleConfig();

function mustRead(text: unknown, input: string): void {
  const why = unreadable(text);
  if (why)
    throw new Error(
      `the answer to ${JSON.stringify(input.slice(0, 200))} ${why}: ${String(text).slice(0, 300)}`,
    );
}

describe('hostile input through the parser and the planner', () => {
  it('every built-in property name, in every slot, gets a readable refusal', () => {
    const slots = (n: string) => [
      `/release ${n} v2`,
      `/release plan payments v2 ${n}`,
      `/release payments v2 to ${n}`,
      `/release payments v2 in ${n}`,
      `/release payments v2 in eu-west,${n}`,
      `/release help ${n}`,
      `/release ${n}`,
      `/release logs ${n}`,
      `/release logs payments file ${n}`,
      `/release history ${n}`,
      `/release status ${n}`,
    ];
    for (const name of BUILT_IN_NAMES) {
      for (const text of slots(name)) {
        const parsed = parseCommand(text, { config });
        // A built-in name is never a name the config defines: no command may take it as one.
        expect(parsed.ok, text).toBe(false);
        if (!parsed.ok) mustRead(parsed.error.message, text);
      }
      const planned = planRelease({ app: 'payments', version: 'v2', factors: [name] }, config);
      expect(planned.ok).toBe(false);
      if (!planned.ok) mustRead(planned.error.message, name);
    }
  });

  it('the example of the issue is answered: /release plan payments v2 constructor', () => {
    const parsed = parseCommand('/release plan payments v2 constructor', { config });
    expect(parsed).toMatchObject({ ok: false, error: { code: 'unknown-factor' } });
  });

  it('a config entry named like a built-in is found, and only it', () => {
    // "constructor" is a valid lower-case name: defined as a factor, it must be that factor.
    const text = `${configText()}\nfactors:\n  constructor:\n    description: a factor named like a built-in\n    effects: { priority: 3 }\n`;
    const r = parseConfig(text, 'x.yaml');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const parsed = parseCommand('/release plan payments v2 constructor', { config: r.config });
    expect(parsed.ok).toBe(true);
    const planned = planRelease({ app: 'payments', version: 'v2', factors: ['constructor'] }, r.config);
    expect(planned.ok && planned.plan.priority).toEqual({ value: 3, source: 'factor constructor' });
    // …while "valueof", which it does not define, is still unknown.
    expect(parseCommand('/release plan payments v2 valueof', { config: r.config }).ok).toBe(false);
  });

  it('100,000 generated commands: parsed and planned without a throw, every answer readable', () => {
    let planned = 0;
    let parsedOk = 0;
    fc.assert(
      fc.property(hostileCommand(config), ({ text, words }) => {
        const parsed = parseCommand(text, { config });
        if (!parsed.ok) mustRead(parsed.error.message, text);
        else {
          parsedOk++;
          const c = parsed.command;
          if (c.kind === 'release' || c.kind === 'plan') {
            const p = planRelease(c, config);
            mustRead(p.ok ? explainPlan(p.plan).join('\n') : p.error.message, text);
          }
        }
        // The planner on its own, with the raw words in every slot (as a caller other than the parser might).
        const [app = '', version = '', environment, region, ...factors] = words;
        const p = planRelease(
          {
            app,
            version,
            ...(environment !== undefined ? { environment } : {}),
            regions: region ? [region] : [],
            factors,
          },
          config,
        );
        planned++;
        mustRead(p.ok ? explainPlan(p.plan).join('\n') : p.error.message, text);
      }),
      { numRuns: 100_000 },
    );
    expect(planned).toBe(100_000);
    // The generator reaches past the first word: some commands are real ones.
    expect(parsedOk).toBeGreaterThan(100);
  }, 120_000);
});

function configText(): string {
  return `
primaryRegistry: { url: http://127.0.0.1:5000 }
regions:
  eu-west: { registry: { url: http://127.0.0.1:5001 }, context: eu-west }
stacks:
  shell: { image: x }
environments:
  prod: { regions: [eu-west], plan: { approvals: { required: 0 } } }
apps:
  payments:
    repo: r
    stack: shell
    channels: { releases: C1, alerts: C2 }
    defaultEnvironment: prod
people: { alice: U1 }
groups: { approvers: [alice] }
rules:
  - { groups: [approvers], actions: [request] }`;
}
