import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { noPlaceMessage } from '../../src/cli/chat-platforms.ts';
import { configCheck, explain } from '../../src/cli/main.ts';
import { parseConfig } from '../../src/config/load.ts';
import { appsWithoutPlace } from '../../src/domain/config.ts';
import { EXAMPLE_CONFIG_PATH, exampleConfig } from '../support/config.ts';

const example = readFileSync(EXAMPLE_CONFIG_PATH, 'utf8');

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  if (i < 0) throw new Error(`no line with ${needle}`);
  return i + 1;
}

describe('ferry config check', () => {
  it('accepts the example config', () => {
    const c = capture();
    expect(configCheck(EXAMPLE_CONFIG_PATH, c.io)).toBe(0);
    expect(c.out[0]).toContain('ok — 4 apps, 2 environments, 2 regions');
  });

  it('accepts a Matrix-only config (rooms, no Slack channels), and refuses an app with neither', () => {
    // Every app with its rooms alone, every person with a Matrix id alone.
    const matrixOnly = example
      .replace(/^ {4}channels: .*\n/gm, '')
      .replace(/\{ slack: U_\w+, (matrix: "[^"]+") \}/g, '{ $1 }');
    expect(matrixOnly).not.toContain('channels:');
    expect(matrixOnly).not.toContain('slack: U_');
    const dir = mkdtempSync(join(tmpdir(), 'ferry-config-'));
    const file = join(dir, 'ferry.yaml');
    writeFileSync(file, matrixOnly);
    const c = capture();
    expect(configCheck(file, c.io), c.err.join('\n')).toBe(0);
    const parsed = parseConfig(matrixOnly);
    if (!parsed.ok) throw new Error('the Matrix-only config did not parse');
    const config = parsed.config;
    expect(appsWithoutPlace(config, ['matrix'])).toEqual([]);
    // Started for Slack, it would have nowhere to post: the bot and `ferry start` refuse that.
    expect(appsWithoutPlace(config, ['slack'])).toEqual(['payments', 'checkout', 'ledger', 'billing']);
    expect(appsWithoutPlace(config, ['slack', 'matrix'])).toEqual([]);
    expect(noPlaceMessage(['payments'], ['slack'])).toContain('payments has no place to post on slack');
    // The Slack-only config is as it was: served on Slack.
    expect(appsWithoutPlace(exampleConfig(), ['slack'])).toEqual([]);

    // An app with neither channels nor rooms has nowhere at all.
    const nowhere = matrixOnly.replace(
      /^ {4}rooms: \{ releases: "#releases:ferry.local", alerts: "#checkout-alerts:ferry.local" \}\n/m,
      '',
    );
    writeFileSync(file, nowhere);
    const c2 = capture();
    expect(configCheck(file, c2.io)).toBe(1);
    expect(c2.err.slice(1)).toEqual([
      expect.stringMatching(
        /ferry\.yaml:\d+: apps\.checkout\.channels: name where the app posts: Slack channels \(channels:\) or Matrix rooms \(rooms:\), or both$/,
      ),
    ]);
  });

  it('reports three planted mistakes, each with its file, line and path', () => {
    const broken = example
      .replace(
        'regions: [eu-west, us-east]\n    requiresPassed',
        'regions: [eu-west, us-central]\n    requiresPassed',
      )
      .replace('batches: [{ size: 100% }]', 'batches: [{ size: lots }]')
      .replace('  - groups: [checkout-devs]', '  - groups: [checkout-team]');
    const dir = mkdtempSync(join(tmpdir(), 'ferry-config-'));
    const file = join(dir, 'ferry.yaml');
    writeFileSync(file, broken);
    const c = capture();
    expect(configCheck(file, c.io)).toBe(1);
    expect(c.err[0]).toMatch(/ferry\.yaml: \d+ problems?/);
    const problems = c.err.slice(1);
    const size = problems.find((p) => p.includes('environments.test.plan.batches[0].size'));
    expect(size).toBe(
      `${file}:${lineOf(broken, 'size: lots')}: environments.test.plan.batches[0].size: a pod count such as 2 or a share such as 25%`,
    );
    // Schema problems come first; cross-references are checked once the shape is right.
    const fixedSize = broken.replace('size: lots', 'size: 100%');
    writeFileSync(file, fixedSize);
    const c2 = capture();
    expect(configCheck(file, c2.io)).toBe(1);
    expect(c2.err.slice(1)).toEqual([
      `${file}:${lineOf(fixedSize, 'us-central')}: environments.prod.regions[1]: unknown region "us-central"; known regions: eu-west, us-east`,
      `${file}:${lineOf(fixedSize, 'checkout-team')}: rules[1].groups[0]: unknown group "checkout-team"; known groups: payments-devs, checkout-devs, approvers, emergency-approvers, platform`,
    ]);
  });

  it('refuses a factor that relaxes a rule without an authority, at its line', () => {
    const broken = example.replace(
      '    authority: { request: platform, approve: platform, approvals: 1 }\n',
      '    requestGroup: platform\n',
    );
    expect(broken).not.toBe(example);
    const r = parseConfig(broken, 'ferry.yaml');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toEqual([
      {
        file: 'ferry.yaml',
        // A problem about a whole entry is reported at its key.
        line: lineOf(broken, 'freeze-exception:'),
        path: 'factors.freeze-exception',
        message: expect.stringMatching(/^relaxes the release window but declares no authority/),
      },
    ]);
    const unknownGroup = example.replace('approve: platform', 'approve: leads');
    const r2 = parseConfig(unknownGroup, 'ferry.yaml');
    expect(!r2.ok && r2.problems.map((p) => p.path)).toEqual(['factors.freeze-exception.authority.approve']);
  });

  it('lists all three at once when they are all the same kind', () => {
    const broken = example
      .replace(
        'regions: [eu-west, us-east]\n    requiresPassed',
        'regions: [eu-west, us-central]\n    requiresPassed',
      )
      .replace('    stack: shell\n    owners: [checkout-devs]', '    stack: jvm\n    owners: [checkout-devs]')
      .replace('  - groups: [checkout-devs]', '  - groups: [checkout-team]');
    const r = parseConfig(broken, 'x.yaml');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map((p) => [p.line, p.path])).toEqual([
      [lineOf(broken, 'us-central'), 'environments.prod.regions[1]'],
      [lineOf(broken, 'stack: jvm'), 'apps.checkout.stack'],
      [lineOf(broken, 'checkout-team'), 'rules[1].groups[0]'],
    ]);
  });

  it('reports YAML syntax errors and unknown keys at their line', () => {
    const r = parseConfig('people:\n  alice: U1\n  alice: U2\n', 'y.yaml');
    expect(!r.ok && r.problems[0]).toMatchObject({ line: 3, message: expect.stringContaining('unique') });
    const typo = example.replace(
      '    defaultEnvironment: prod\n    namespace: payments',
      '    defaultEnviroment: prod\n    namespace: payments',
    );
    const r2 = parseConfig(typo, 'z.yaml');
    expect(r2.ok).toBe(false);
    if (!r2.ok) {
      const lines = r2.problems.map((p) => `${p.line} ${p.path}`);
      expect(lines).toContain(`${lineOf(typo, 'defaultEnviroment')} apps.payments.defaultEnviroment`);
    }
  });

  it('refuses promotion rules that loop and reserved words as names', () => {
    const c = exampleConfig();
    const r = parseConfig(
      example
        .replace('  test:\n    description', '  test:\n    requiresPassed: prod\n    description')
        .replace('  ledger:\n', '  status:\n'),
      'loop.yaml',
    );
    expect(c.apps.ledger).toBeDefined();
    expect(r.ok).toBe(false);
    if (!r.ok) {
      const messages = r.problems.map((p) => p.message).join('\n');
      expect(messages).toContain('the promotion rule loops');
      expect(messages).toContain('"status" is a word of the command grammar');
    }
  });
});

describe('names Kubernetes would refuse (DNS-1123 labels)', () => {
  const withApp = (fields: string) => example.replace('    namespace: payments\n', `${fields}\n`);

  it('refuses the namespace and deployment of the issue, each at its file and line', () => {
    const broken = withApp('    namespace: "Payments/../kube-system"\n    deployment: "x;y"');
    const r = parseConfig(broken, 'k.yaml');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map((p) => [p.file, p.line, p.path])).toEqual([
      ['k.yaml', lineOf(broken, 'Payments/../kube-system'), 'apps.payments.namespace'],
      ['k.yaml', lineOf(broken, 'x;y'), 'apps.payments.deployment'],
    ]);
    expect(r.problems[0]?.message).toContain('namespace "Payments/../kube-system" must be lower-case');
  });

  it.each([
    ['container: "-sidecar"', 'apps.payments.container'],
    ['container: "web_1"', 'apps.payments.container'],
    ['namespace: "pay-"', 'apps.payments.namespace'],
    ['namespace: ""', 'apps.payments.namespace'],
    [`namespace: ${'n'.repeat(64)}`, 'apps.payments.namespace'],
    // The second track "<deployment>-b" must fit in 63 characters too.
    [`deployment: ${'d'.repeat(62)}`, 'apps.payments.deployment'],
  ])('refuses %s', (field, path) => {
    const broken = withApp(`    ${field}`);
    const r = parseConfig(broken, 'k.yaml');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems.map((p) => p.path)).toEqual([path]);
  });

  it('refuses an app name ending in a dash (it is also the default namespace)', () => {
    const broken = example.replace('  ledger:\n', '  ledger-:\n');
    const r = parseConfig(broken, 'k.yaml');
    expect(!r.ok && r.problems.map((p) => [p.line, p.path])).toContainEqual([
      lineOf(broken, 'ledger-:'),
      'apps.ledger-',
    ]);
  });

  it('takes good labels, up to their limits', () => {
    const ok = withApp(
      // the deployment is checked as expanded: "ddd…-prod" is 61 characters
      `    namespace: ${'n'.repeat(63)}\n    deployment: ${'d'.repeat(56)}-{env}\n    container: web-1`,
    );
    expect(parseConfig(ok, 'k.yaml').ok).toBe(true);
  });
});

describe('ferry explain', () => {
  it('prints the plan with the factor behind every setting', () => {
    const c = capture();
    expect(explain('/release payments v2 degraded', exampleConfig(), false, c.io)).toBe(0);
    expect(c.out[0]).toBe('Release payments v2 to prod with degraded');
    expect(c.out).toContain('batches: 2 (factor degraded)');
    expect(c.out).toContain('on a failing gate: stop and wait for a person (factor degraded)');
  });

  it('prints the bot’s message and fails for a bad command', () => {
    const c = capture();
    expect(explain('/release paymnts v2', exampleConfig(), false, c.io)).toBe(1);
    expect(c.err.join('\n')).toContain('Did you mean "payments"?');
  });

  it('gives JSON with the plan for tools', () => {
    const c = capture();
    expect(explain('/release payments v2 canary in eu-west', exampleConfig(), true, c.io)).toBe(0);
    const json = JSON.parse(c.out.join('\n'));
    expect(json.plan.regions).toEqual({ value: ['eu-west'], source: 'command (in …)' });
    expect(json.plan.batches.value[0]).toEqual({ size: '1', pause: '5m', manualPromotion: true });
  });
});
