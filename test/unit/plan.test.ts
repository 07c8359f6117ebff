import { describe, expect, it } from 'vitest';
import type { FactorConfig } from '../../src/domain/config.ts';
import { DEFAULT_FACTORS } from '../../src/domain/factors.ts';
import {
  explainPlan,
  type Plan,
  planRelease,
  podsAfterBatch,
  relaxedRules,
  totalRequired,
} from '../../src/domain/plan.ts';
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
    approvals: p.approvals.requirements
      .map((r) => `${r.required.value}/${r.group.value} <${r.required.source}|${r.group.source}>`)
      .join(' + '),
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
        // The environment's approvers, and the emergency group's authority besides.
        approvals:
          '1/approvers <environment prod|environment prod> + 1/emergency-approvers <factor emergency|factor emergency>',
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
        // degraded slows a release down; it relaxes no rule by default.
        window: 'respect <default>',
        promotion: 'true <default>',
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
    expect(p.approvals.requirements).toEqual([
      {
        required: { value: 0, source: 'environment test' },
        group: { value: 'approvers', source: 'default' },
      },
    ]);
    expect(p.batches.value).toEqual([{ size: '100%', pause: '5s', manualPromotion: false }]);
    expect(p.promotionRule.value).toEqual({ applies: false, requiresPassed: null });
  });

  it('a user factor that relaxes a rule needs its authority on top of the environment approvers', () => {
    const p = plan(['freeze-exception']);
    expect(p.approvals.requirements).toEqual([
      {
        required: { value: 1, source: 'environment prod' },
        group: { value: 'approvers', source: 'environment prod' },
      },
      {
        required: { value: 1, source: 'factor freeze-exception' },
        group: { value: 'platform', source: 'factor freeze-exception' },
        factor: 'freeze-exception',
      },
    ]);
    expect(p.factorUses).toEqual([
      { factor: 'freeze-exception', relaxes: ['the release window'], requestGroup: 'platform' },
    ]);
    expect(p.releaseWindowBypass).toEqual({ value: true, source: 'factor freeze-exception' });
  });

  it('emergency needs the emergency group even where the environment needs no approval', () => {
    const p = plan(['emergency'], 'test');
    expect(totalRequired(p)).toBe(1);
    expect(p.approvals.requirements[1]?.group.value).toBe('emergency-approvers');
  });

  it('refuses a factor whose approving group the config lacks, instead of dropping the approval', () => {
    const c = exampleConfig();
    delete c.groups['emergency-approvers'];
    const r = planRelease({ app: 'payments', version: 'v2', factors: ['emergency'] }, c);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('factor-without-authority');
    expect(r.error.message).toContain('emergency-approvers');
  });

  it('refuses a relaxing factor without an authority even in a config that skipped the check', () => {
    const c = exampleConfig();
    c.factors['quick'] = {
      description: 'skip the line',
      precedence: 50,
      excludes: [],
      effects: { promotionRule: false },
    };
    const r = planRelease({ app: 'payments', version: 'v2', factors: ['quick'] }, c);
    expect(!r.ok && r.error.message).toMatch(/relaxes the promotion rule but the config names nobody/);
  });

  it('names what each factor relaxes', () => {
    const c = exampleConfig();
    const rules = (effects: FactorConfig['effects']) =>
      relaxedRules({ description: '', precedence: 1, excludes: [], effects }, c);
    expect(rules({ promotionRule: false })).toEqual(['the promotion rule']);
    expect(rules({ promotionRule: true, releaseWindowBypass: false })).toEqual([]);
    expect(rules({ releaseWindowBypass: true })).toEqual(['the release window']);
    expect(rules({ skip: { syncVerification: true } })).toEqual(['sync verification']);
    expect(rules({ skip: { prewarm: true } })).toEqual([]);
    // prod needs 1: asking for 0 is fewer; asking for 2 is not.
    expect(rules({ approvals: { required: 0 } })).toEqual(['the approval rule']);
    expect(rules({ approvals: { required: 2 } })).toEqual([]);
    expect(rules({ approvals: { group: 'platform' } })).toEqual(['the approval rule']);
    expect(rules({ approvals: { allowSelfApproval: true } })).toEqual(['the approval rule']);
    expect(rules({ approvals: { expiresAfter: '30m' } })).toEqual([]);
    for (const [name, f] of Object.entries(DEFAULT_FACTORS)) {
      if (relaxedRules(f, c).length) expect(f.authority, name).toBeDefined();
    }
    expect(relaxedRules(DEFAULT_FACTORS.degraded as FactorConfig, c)).toEqual([]);
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

  it('says who may use each factor and who must approve it', () => {
    const lines = explainPlan(plan(['freeze-exception', 'canary']));
    expect(lines).toContain(
      'approvals for freeze-exception: 1 from group platform, besides the others (factor freeze-exception)',
    );
    expect(lines).toContain(
      'factor freeze-exception: may be used by members of platform; relaxes the release window; must be approved by 1 of platform (factor freeze-exception)',
    );
    expect(lines).toContain(
      'factor canary: may be used by anyone who may release payments to prod; relaxes no rule (factor canary)',
    );
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
