// Alert routing by the app's owner team and the environment (alerts.routes,
// teams): the example config's commented routes, switched on, send prod to
// the app's alerts channel and the rest to the owner team's; without routes
// everything goes to the app's channel, as before.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { alertDestination, ownerTeamOf } from '../../src/domain/alerts.ts';
import type { FerryConfig } from '../../src/domain/config.ts';
import { EXAMPLE_CONFIG_PATH, exampleConfig } from '../support/config.ts';

const example = readFileSync(EXAMPLE_CONFIG_PATH, 'utf8');

/** The example with its commented `teams:` and `alerts:` block switched on. */
function exampleWithRoutes(): string {
  const lines = example.split('\n');
  const from = lines.indexOf('# teams:');
  const to = lines.findIndex((l, i) => i > from && l.startsWith('#   memoryWindow:'));
  expect(from).toBeGreaterThan(0);
  expect(to).toBeGreaterThan(from);
  return [
    ...lines.slice(0, from),
    ...lines.slice(from, to + 1).map((l) => l.slice(2)),
    ...lines.slice(to + 1),
  ].join('\n');
}

function parsed(text: string): FerryConfig {
  const r = parseConfig(text);
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
  return r.config;
}

describe('alert routing', () => {
  it('without routes every alert goes to the app alerts channel (the old behaviour)', () => {
    const c = exampleConfig();
    expect(c.alerts.routes).toEqual([]);
    for (const env of ['prod', 'test', undefined])
      expect(alertDestination(c, 'payments', env)).toEqual({
        channel: 'C_PAY_ALERTS',
        room: '#payments-alerts:ferry.local',
        via: 'app',
      });
    expect(alertDestination(c, 'nope', 'prod')).toBeUndefined();
  });

  it("the example's routes: prod to the app's channel, other environments to the owner team's", () => {
    const c = parsed(exampleWithRoutes());
    expect(ownerTeamOf(c, 'payments')).toBe('payments-devs');
    expect(alertDestination(c, 'payments', 'prod')).toMatchObject({ channel: 'C_PAY_ALERTS', via: 'app' });
    expect(alertDestination(c, 'payments', 'test')).toEqual({
      channel: 'C_PAY_TEAM',
      room: '#payments-team:ferry.local',
      via: 'team',
      team: 'payments-devs',
    });
    expect(alertDestination(c, 'checkout', 'test')).toEqual({
      channel: 'C_CHECKOUT_TEAM',
      via: 'team',
      team: 'checkout-devs',
    });
    // an environment nobody could name (no label, no default) matches only `*` routes: the team's
    expect(alertDestination(c, 'checkout', undefined)).toMatchObject({ channel: 'C_CHECKOUT_TEAM' });
  });

  it('the first matching route decides; an app route and an app whose team has no channel', () => {
    const c = exampleConfig();
    c.teams = { 'payments-devs': { alerts: 'C_PAY_TEAM' } };
    c.alerts.routes = [
      { environments: ['*'], apps: ['ledger'], to: 'app' },
      { environments: ['test'], apps: ['*'], to: 'team' },
    ];
    expect(alertDestination(c, 'ledger', 'test')).toMatchObject({ channel: 'C_PAY_ALERTS', via: 'app' });
    expect(alertDestination(c, 'payments', 'test')).toMatchObject({ channel: 'C_PAY_TEAM', via: 'team' });
    // no route for prod: the app's channel
    expect(alertDestination(c, 'payments', 'prod')).toMatchObject({ channel: 'C_PAY_ALERTS', via: 'app' });
    // checkout's team has no entry under teams: its own channel rather than nowhere
    expect(alertDestination(c, 'checkout', 'test')).toMatchObject({
      channel: 'C_CHECKOUT_ALERTS',
      via: 'app',
    });
  });

  it('refuses a team that is not a group and a route naming an unknown environment or app', () => {
    const text = exampleWithRoutes()
      .replace('  checkout-devs: { alerts: C_CHECKOUT_TEAM }', '  checkout-team: { alerts: C_CHECKOUT_TEAM }')
      .replace(
        '- { environments: [prod], to: app }',
        '- { environments: [production], apps: [paymnts], to: app }',
      );
    const r = parseConfig(text);
    expect(r.ok).toBe(false);
    const problems = r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^teams\.checkout-team: "checkout-team" is not a group/),
        expect.stringMatching(/^alerts\.routes\[0\]\.environments\[0\]: unknown environment "production"/),
        expect.stringMatching(/^alerts\.routes\[0\]\.apps\[0\]: unknown app "paymnts"/),
      ]),
    );
  });
});
