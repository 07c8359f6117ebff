import { describe, expect, it } from 'vitest';
import { DEFAULT_FACTORS } from '../../src/domain/factors.ts';
import { explainPlan, type Plan, planRelease, podsAfterBatch } from '../../src/domain/plan.ts';
import { exampleConfig } from '../support/config.ts';

const config = exampleConfig();

function plan(factors: string[], environment = 'prod'): Plan {
  const r = planRelease({ app: 'payments', version: 'v2', environment, factors }, config);
  if (!r.ok) throw new Error(r.error.message);
  return r.plan;
}

/** The settings a person cares about, with who set them, as one flat row. */
function row(p: Plan) {
  return {
    approvals: `${p.approvals.required.value}/${p.approvals.group.value} <${p.approvals.required.source}|${p.approvals.group.source}>`,
    batches: `${p.batches.value.map((b) => b.size + (b.manualPromotion ? '!' : '')).join(',')} <${p.batches.source}>`,
    onFailure: `${p.gate.onFailure.value} <${p.gate.onFailure.source}>`,
    prewarm: `${!p.skip.prewarm.value} <${p.skip.prewarm.source}>`,
    priority: `${p.priority.value} <${p.priority.source}>`,
    window: `${p.releaseWindowBypass.value ? 'bypass' : 'respect'} <${p.releaseWindowBypass.source}>`,
    promotion: `${p.promotionRule.value.applies} <${p.promotionRule.source}>`,
    regions: `${p.regionOrder.value} <${p.regionOrder.source}>`,
  };
}

describe('each default factor alone (prod)', () => {
  const table: [string, ReturnType<typeof row>][] = [
    [
      'none',
      {
        approvals: '1/approvers <environment prod|environment prod>',
        batches: '1,50%,100% <environment prod>',
        onFailure: 'rollback <default>',
        prewarm: 'true <default>',
        priority: '5 <default>',
        window: 'respect <default>',
        promotion: 'true <default>',
        regions: 'sequential <default>',
      },
    ],
    [
      'emergency',
      {
        approvals: '1/emergency-approvers <factor emergency|factor emergency>',
        batches: '100% <factor emergency>',
        onFailure: 'rollback <factor emergency>',
        prewarm: 'false <factor emergency>',
        priority: '1 <factor emergency>',
        window: 'bypass <factor emergency>',
        promotion: 'false <factor emergency>',
        regions: 'sequential <default>',
      },
    ],
    [
      'degraded',
      {
        approvals: '1/approvers <environment prod|environment prod>',
        batches: '50%,100% <factor degraded>',
        onFailure: 'wait <factor degraded>',
        prewarm: 'true <default>',
        priority: '2 <factor degraded>',
        window: 'bypass <factor degraded>',
        promotion: 'false <factor degraded>',
        regions: 'sequential <default>',
      },
    ],
    [
      'canary',
      {
        approvals: '1/approvers <environment prod|environment prod>',
        batches: '1!,50%,100% <factor canary>',
        onFailure: 'rollback <factor canary>',
        prewarm: 'true <default>',
        priority: '5 <default>',
        window: 'respect <default>',
        promotion: 'true <default>',
        regions: 'sequential <default>',
      },
    ],
    [
      'no-prewarm',
      {
        approvals: '1/approvers <environment prod|environment prod>',
        batches: '1,50%,100% <environment prod>',
        onFailure: 'rollback <default>',
        prewarm: 'false <factor no-prewarm>',
        priority: '5 <default>',
        window: 'respect <default>',
        promotion: 'true <default>',
        regions: 'sequential <default>',
      },
    ],
    [
      'parallel',
      {
        approvals: '1/approvers <environment prod|environment prod>',
        batches: '1,50%,100% <environment prod>',
        onFailure: 'rollback <default>',
        prewarm: 'true <default>',
        priority: '5 <default>',
        window: 'respect <default>',
        promotion: 'true <default>',
        regions: 'parallel <factor parallel>',
      },
    ],
  ];
  it.each(table)('%s', (factor, expected) => {
    expect(row(plan(factor === 'none' ? [] : [factor]))).toEqual(expected);
  });
});

describe('every pair of default factors', () => {
  const names = Object.keys(DEFAULT_FACTORS);
  const pairs = names.flatMap((a, i) => names.slice(i + 1).map((b) => [a, b] as [string, string]));

  it.each(pairs)('%s + %s', (a, b) => {
    const exclusive = DEFAULT_FACTORS[a]?.excludes.includes(b) || DEFAULT_FACTORS[b]?.excludes.includes(a);
    const r1 = planRelease({ app: 'payments', version: 'v2', factors: [a, b] }, config);
    const r2 = planRelease({ app: 'payments', version: 'v2', factors: [b, a] }, config);
    // The order the factors were typed in never changes the outcome.
    expect(r2).toEqual(r1);
    if (exclusive) {
      expect(r1.ok).toBe(false);
      if (!r1.ok) {
        expect(r1.error.code).toBe('exclusive-factors');
        expect(r1.error.message).toContain('cannot be combined');
      }
      return;
    }
    if (!r1.ok) throw new Error(r1.error.message);
    const p = r1.plan;
    const [low, high] =
      (DEFAULT_FACTORS[a]?.precedence ?? 0) <= (DEFAULT_FACTORS[b]?.precedence ?? 0) ? [a, b] : [b, a];
    // Where both set a value, the one with the higher precedence wins; where only one does, it sets it.
    const settings: [string, (x: Plan) => { source: string }][] = [
      ['batches', (x) => x.batches],
      ['priority', (x) => x.priority],
      ['gate.onFailure', (x) => x.gate.onFailure],
      ['skip.prewarm', (x) => x.skip.prewarm],
      ['releaseWindowBypass', (x) => x.releaseWindowBypass],
      ['regions.order', (x) => x.regionOrder],
    ];
    for (const [path, get] of settings) {
      const setBy = (f: string) => {
        let v: unknown = DEFAULT_FACTORS[f]?.effects;
        for (const k of path.split('.')) v = (v as Record<string, unknown> | undefined)?.[k];
        return v !== undefined;
      };
      const source = get(p).source;
      if (setBy(high)) expect(source, path).toBe(`factor ${high}`);
      else if (setBy(low)) expect(source, path).toBe(`factor ${low}`);
      else expect(source, path).not.toMatch(/^factor/);
    }
    expect(p.factors).toEqual([low, high]);
  });
});

describe('plan details', () => {
  it('the test environment needs no approval and goes out in one batch', () => {
    const p = plan([], 'test');
    expect(p.approvals.required).toEqual({ value: 0, source: 'environment test' });
    expect(p.batches.value).toEqual([{ size: '100%', pause: '5s', manualPromotion: false }]);
    expect(p.promotionRule.value).toEqual({ applies: false, requiresPassed: null });
  });

  it('a user factor from the config applies like a built-in one', () => {
    const p = plan(['freeze-exception']);
    expect(p.approvals.required).toEqual({ value: 2, source: 'factor freeze-exception' });
    expect(p.approvals.group).toEqual({ value: 'platform', source: 'factor freeze-exception' });
  });

  it('falls back to the environment group when a built-in factor names a group the config lacks', () => {
    const c = exampleConfig();
    delete c.groups['emergency-approvers'];
    const r = planRelease({ app: 'payments', version: 'v2', factors: ['emergency'] }, c);
    if (!r.ok) throw new Error(r.error.message);
    expect(r.plan.approvals.group.value).toBe('approvers');
    expect(r.plan.notes.join()).toContain('emergency-approvers');
  });

  it('keeps the environment order of regions named in the command', () => {
    const r = planRelease(
      { app: 'payments', version: 'v2', regions: ['us-east', 'eu-west'], factors: [] },
      config,
    );
    expect(r.ok && r.plan.regions).toEqual({ value: ['eu-west', 'us-east'], source: 'command (in …)' });
    const bad = planRelease({ app: 'checkout', version: 'v2', regions: ['us-east'], factors: [] }, config);
    expect(!bad.ok && bad.error.message).toBe('test does not run in us-east. test runs in: eu-west.');
  });

  it('explains every setting with the layer behind it', () => {
    const lines = explainPlan(plan(['degraded']));
    const settingLines = lines.slice(1).filter((l) => !l.startsWith('  batch') && !l.startsWith('note:'));
    expect(settingLines.length).toBeGreaterThan(12);
    for (const l of settingLines)
      expect(l).toMatch(/\((default|environment \w+|factor [\w-]+|command \(in …\))\)$/);
  });

  it('resolves batch sizes against replicas', () => {
    expect([1, 2, 3, 4].map((r) => podsAfterBatch('25%', r))).toEqual([1, 1, 1, 1]);
    expect(podsAfterBatch('50%', 5)).toBe(3);
    expect(podsAfterBatch('1', 4)).toBe(1);
    expect(podsAfterBatch('7', 4)).toBe(4);
    expect(podsAfterBatch('100%', 4)).toBe(4);
  });
});
