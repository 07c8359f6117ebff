// The release planner: a request (app, version, environment, regions,
// factors) and the config give a plan. Settings come in layers — Ferry's
// defaults, then the environment, then each factor in precedence order — and
// every setting remembers the layer that set it, so the plan can say which
// factor decided what. The same inputs always give the same plan.

import { type AnalysisCheck, type AnalysisPlan, explainAnalysis, type WebhookStep } from './analysis.ts';
import type { FactorConfig, FerryConfig, PlanSettings } from './config.ts';
import { closest, closestKey } from './suggest.ts';

export interface Batch {
  /** "3" pods or "25%" of the replicas: the cumulative number running the new version after this batch. */
  size: string;
  pause: string;
  manualPromotion: boolean;
}

import type { Setting, Source } from './setting.ts';

export type { Setting, Source };

/**
 * A number of approvals from one group. A plan needs every requirement met,
 * each by different people: one approval counts toward one requirement only.
 */
export interface ApprovalRequirement {
  group: Setting<string>;
  required: Setting<number>;
  /** The factor whose authority asks for this requirement; unset for the environment's own approvers. */
  factor?: string;
}

/** What a factor of the plan relaxes, and who vouches for it. */
export interface FactorUse {
  factor: string;
  /** The rules it relaxes, as a person names them; empty when it only changes how the release goes out. */
  relaxes: string[];
  /** The group whose members may ask for it; null: anyone who may release the app there. */
  requestGroup: string | null;
}

export interface Plan {
  app: string;
  version: string;
  environment: string;
  regions: Setting<string[]>;
  factors: string[];
  approvals: {
    /** The environment's requirement first, then one per factor authority. */
    requirements: ApprovalRequirement[];
    allowSelfApproval: Setting<boolean>;
    expiresAfter: Setting<string>;
  };
  /** Each factor of the plan: what it relaxes and who may use it. */
  factorUses: FactorUse[];
  batches: Setting<Batch[]>;
  gate: {
    pause: Setting<string>;
    maxRestarts: Setting<number>;
    onFailure: Setting<'rollback' | 'wait'>;
    progressDeadline: Setting<string>;
  };
  skip: { prewarm: Setting<boolean>; syncVerification: Setting<boolean> };
  priority: Setting<number>;
  releaseWindowBypass: Setting<boolean>;
  /** The environment that must have run this version first, when the rule applies. */
  promotionRule: Setting<{ applies: boolean; requiresPassed: string | null }>;
  regionOrder: Setting<'sequential' | 'parallel'>;
  continueOnRegionFailure: Setting<boolean>;
  whenBusy: Setting<'queue' | 'refuse'>;
  /** Metric checks and webhooks at each batch gate (absent in plans stored before analysis existed). */
  analysis?: AnalysisPlan;
  /** Things a person should know about how the plan was made. */
  notes: string[];
}

export interface PlanRequest {
  app: string;
  version: string;
  environment?: string;
  regions?: string[];
  factors: string[];
}

export type PlanError =
  | { code: 'unknown-app'; message: string; suggestions: string[] }
  | { code: 'unknown-environment'; message: string; suggestions: string[] }
  | { code: 'unknown-factor'; message: string; suggestions: string[] }
  | { code: 'unknown-region'; message: string; suggestions: string[] }
  | { code: 'exclusive-factors'; message: string; suggestions: string[] }
  | { code: 'factor-without-authority'; message: string; suggestions: string[] };

export type PlanResult = { ok: true; plan: Plan } | { ok: false; error: PlanError };

/** Ferry's defaults: what a release does when nothing else says otherwise. */
export const DEFAULT_SETTINGS = {
  approvals: { required: 1, group: 'approvers', allowSelfApproval: false, expiresAfter: '4h' },
  batches: [{ size: '25%' }, { size: '50%' }, { size: '100%' }],
  gate: { pause: '30s', maxRestarts: 0, onFailure: 'rollback', progressDeadline: '10m' },
  skip: { prewarm: false, syncVerification: false },
  priority: 5,
  releaseWindowBypass: false,
  promotionRule: true,
  regions: { order: 'sequential', continueOnFailure: false },
  whenBusy: 'queue',
  analysis: { interval: '10s', duration: '1m' },
} satisfies PlanSettings;

/** The rules a factor can relax, as the refusals and the plan name them. */
export const RULES = {
  promotionRule: 'the promotion rule',
  releaseWindow: 'the release window',
  approvals: 'the approval rule',
  syncVerification: 'sync verification',
} as const;

/**
 * The rules a factor relaxes. Decided from its effects alone, so that
 * `ferry config check` can demand an authority for it: skipping the
 * promotion rule, bypassing the release window, skipping sync verification,
 * asking fewer approvals than some environment, choosing other approvers or
 * allowing self-approval.
 */
export function relaxedRules(factor: FactorConfig, config: Pick<FerryConfig, 'environments'>): string[] {
  const e = factor.effects;
  const out: string[] = [];
  if (e.promotionRule === false) out.push(RULES.promotionRule);
  if (e.releaseWindowBypass === true) out.push(RULES.releaseWindow);
  const a = e.approvals;
  if (a) {
    const envRequired = Object.values(config.environments).map(
      (env) => env.plan.approvals?.required ?? DEFAULT_SETTINGS.approvals.required,
    );
    const fewer =
      a.required !== undefined && envRequired.some((n) => a.required !== undefined && a.required < n);
    if (fewer || a.group !== undefined || a.allowSelfApproval === true) out.push(RULES.approvals);
  }
  if (e.skip?.syncVerification === true) out.push(RULES.syncVerification);
  return out;
}

/** All approvals a plan needs, over every requirement. */
export function totalRequired(plan: Plan): number {
  return approvalRequirements(plan).reduce((n, r) => n + r.required.value, 0);
}

/**
 * The plan's approval requirements. A release stored before requirements
 * existed has one group and one count; it reads as a single requirement.
 */
export function approvalRequirements(plan: Plan): ApprovalRequirement[] {
  if (Array.isArray(plan.approvals.requirements)) return plan.approvals.requirements;
  const legacy = plan.approvals as unknown as { required: Setting<number>; group: Setting<string> };
  return [{ group: legacy.group, required: legacy.required }];
}

/** "1 approval from approvers" or "1 approval from approvers and 1 from emergency-approvers". */
export function describeRequirements(requirements: ApprovalRequirement[], mark = (g: string) => g): string {
  const wanted = requirements.filter((r) => r.required.value > 0);
  if (wanted.length === 0) return 'no approval';
  return wanted
    .map((r, i) =>
      i === 0
        ? `${r.required.value} approval${r.required.value === 1 ? '' : 's'} from ${mark(r.group.value)}`
        : `${r.required.value} from ${mark(r.group.value)}`,
    )
    .join(' and ');
}

type Leaves = Map<string, Setting<unknown>>;

/** Flattens settings to dotted leaf keys; arrays (batches) are single leaves. */
function applyLayer(into: Leaves, settings: PlanSettings, source: Source, prefix = ''): void {
  for (const [key, value] of Object.entries(settings)) {
    if (value === undefined) continue;
    const path = prefix ? `${prefix}.${key}` : key;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      applyLayer(into, value as PlanSettings, source, path);
    } else {
      into.set(path, { value, source });
    }
  }
}

/** A layer without its analysis checks and webhooks: those are set by name, whole (see analysisSteps). */
function withoutSteps(settings: PlanSettings): PlanSettings {
  if (!settings.analysis) return settings;
  const { checks: _c, webhooks: _w, ...rest } = settings.analysis;
  return { ...settings, analysis: rest };
}

type Layer = { settings: PlanSettings; source: Source };

/** The analysis steps of the layers: by name, the last layer naming one wins, null removes it. */
function analysisSteps(layers: Layer[]): {
  checks: Setting<AnalysisCheck>[];
  webhooks: Setting<WebhookStep>[];
} {
  const checks = new Map<string, Setting<AnalysisCheck> | null>();
  const webhooks = new Map<string, Setting<WebhookStep> | null>();
  for (const { settings, source } of layers) {
    for (const [name, c] of Object.entries(settings.analysis?.checks ?? {})) {
      checks.set(
        name,
        c
          ? {
              source,
              value: {
                name,
                query: c.query,
                ...(c.max !== undefined ? { max: c.max } : {}),
                ...(c.min !== undefined ? { min: c.min } : {}),
                ...(c.compare ? { compare: c.compare } : {}),
                worseWhen: c.worseWhen,
                failureLimit: c.failureLimit,
              },
            }
          : null,
      );
    }
    for (const [name, w] of Object.entries(settings.analysis?.webhooks ?? {})) {
      webhooks.set(
        name,
        w
          ? {
              source,
              value: {
                name,
                kind: w.kind,
                url: w.url,
                timeout: w.timeout,
                retries: w.retries,
                ...(w.secretEnv ? { secretEnv: w.secretEnv } : {}),
              },
            }
          : null,
      );
    }
  }
  const present = <T>(m: Map<string, Setting<T> | null>) =>
    [...m.values()].filter((s): s is Setting<T> => s !== null);
  return { checks: present(checks), webhooks: present(webhooks) };
}

function leaf<T>(leaves: Leaves, key: string): Setting<T> {
  const s = leaves.get(key);
  if (!s) throw new Error(`planner: no value for ${key}`);
  return s as Setting<T>;
}

/** Factors sorted the way they are applied: by precedence, then by name, so the order typed never matters. */
export function orderFactors(names: string[], factors: Record<string, FactorConfig>): string[] {
  return [...new Set(names)].sort((a, b) => {
    const pa = factors[a]?.precedence ?? 0;
    const pb = factors[b]?.precedence ?? 0;
    return pa - pb || a.localeCompare(b);
  });
}

export function planRelease(req: PlanRequest, config: FerryConfig): PlanResult {
  const app = config.apps[req.app];
  if (!app) {
    const suggestions = closestKey(req.app, config.apps);
    return {
      ok: false,
      error: {
        code: 'unknown-app',
        message: `There is no app called "${req.app}".${suggestions.length ? ` Did you mean ${suggestions.map((s) => `"${s}"`).join(' or ')}?` : ''}`,
        suggestions,
      },
    };
  }
  const envName = req.environment ?? app.defaultEnvironment;
  const env = config.environments[envName];
  if (!env) {
    const names = Object.keys(config.environments);
    return {
      ok: false,
      error: {
        code: 'unknown-environment',
        message: `There is no environment called "${envName}". Environments: ${names.join(', ')}.`,
        suggestions: closest(envName, names),
      },
    };
  }
  for (const f of req.factors) {
    if (!config.factors[f]) {
      const names = Object.keys(config.factors);
      const near = closest(f, names);
      return {
        ok: false,
        error: {
          code: 'unknown-factor',
          message: `"${f}" is not a factor I know.${near.length ? ` Did you mean "${near[0]}"?` : ''} Factors: ${names.join(', ')}.`,
          suggestions: near,
        },
      };
    }
  }
  const factorNames = orderFactors(req.factors, config.factors);
  for (const a of factorNames) {
    for (const b of config.factors[a]?.excludes ?? []) {
      if (factorNames.includes(b)) {
        return {
          ok: false,
          error: {
            code: 'exclusive-factors',
            message: `"${a}" and "${b}" cannot be combined: ${config.factors[a]?.description ?? ''} Choose one of them.`,
            suggestions: [a, b],
          },
        };
      }
    }
  }
  // A factor that relaxes a rule is usable only with its authority, and only
  // when the group that must approve it exists: never silently without it.
  for (const name of factorNames) {
    const factor = config.factors[name] as FactorConfig;
    const relaxes = relaxedRules(factor, config);
    const approver = factor.authority?.approve;
    const problem =
      relaxes.length > 0 && !factor.authority
        ? `"${name}" relaxes ${relaxes.join(' and ')} but the config names nobody to authorise it, so it cannot be used. Ask the platform team to give it an authority in ferry.yaml.`
        : approver && !(approver in config.groups)
          ? `"${name}" must be approved by group "${approver}", which this config does not define, so it cannot be used. Ask the platform team to add the group to ferry.yaml.`
          : undefined;
    if (problem)
      return { ok: false, error: { code: 'factor-without-authority', message: problem, suggestions: [] } };
  }
  let regions: Setting<string[]> = { value: [...env.regions], source: `environment ${envName}` };
  if (req.regions && req.regions.length > 0) {
    for (const r of req.regions) {
      if (!env.regions.includes(r)) {
        const known = r in config.regions;
        return {
          ok: false,
          error: {
            code: 'unknown-region',
            message: known
              ? `${envName} does not run in ${r}. ${envName} runs in: ${env.regions.join(', ')}.`
              : `There is no region called "${r}". ${envName} runs in: ${env.regions.join(', ')}.`,
            suggestions: closest(r, env.regions),
          },
        };
      }
    }
    // Keep the environment's order: it is the order regions are rolled out in.
    regions = { value: env.regions.filter((r) => req.regions?.includes(r)), source: 'command (in …)' };
  }

  const notes: string[] = [];
  const leaves: Leaves = new Map();
  const layers: Layer[] = [{ settings: env.plan, source: `environment ${envName}` }];
  applyLayer(leaves, DEFAULT_SETTINGS as PlanSettings, 'default');
  applyLayer(leaves, withoutSteps(env.plan), `environment ${envName}`);
  for (const name of factorNames) {
    const factor = config.factors[name] as FactorConfig;
    const effects = structuredClone(factor.effects);
    const group = effects.approvals?.group;
    if (group && !(group in config.groups) && effects.approvals) {
      delete effects.approvals.group;
      notes.push(
        `factor ${name} asks for approvers from group "${group}", which this config does not define; the ${envName} approvers are asked instead.`,
      );
    }
    applyLayer(leaves, withoutSteps(effects), `factor ${name}`);
    layers.push({ settings: effects, source: `factor ${name}` });
  }
  const steps = analysisSteps(layers);

  const gatePause = leaf<string>(leaves, 'gate.pause');
  const rawBatches = leaf<PlanSettings['batches']>(leaves, 'batches');
  const batches: Setting<Batch[]> = {
    source: rawBatches.source,
    value: (rawBatches.value ?? []).map((b) => ({
      size: b.size,
      pause: b.pause ?? gatePause.value,
      manualPromotion: b.manualPromotion ?? false,
    })),
  };
  const rule = leaf<boolean>(leaves, 'promotionRule');
  const promotionRule: Setting<{ applies: boolean; requiresPassed: string | null }> = {
    value: { applies: rule.value && Boolean(env.requiresPassed), requiresPassed: env.requiresPassed ?? null },
    source: env.requiresPassed ? rule.source : `environment ${envName}`,
  };
  const requirements: ApprovalRequirement[] = [
    { group: leaf(leaves, 'approvals.group'), required: leaf(leaves, 'approvals.required') },
  ];
  const factorUses: FactorUse[] = [];
  for (const name of factorNames) {
    const factor = config.factors[name] as FactorConfig;
    const authority = factor.authority;
    factorUses.push({
      factor: name,
      relaxes: relaxedRules(factor, config),
      requestGroup: authority?.request ?? factor.requestGroup ?? null,
    });
    if (authority) {
      requirements.push({
        group: { value: authority.approve, source: `factor ${name}` },
        required: { value: authority.approvals, source: `factor ${name}` },
        factor: name,
      });
    }
  }
  for (const r of requirements) {
    if (r.required.value === 0) continue;
    const size = config.groups[r.group.value]?.length ?? 0;
    if (size < r.required.value) {
      notes.push(
        `${r.required.value} approvals are needed from group "${r.group.value}", which has ${size} member${size === 1 ? '' : 's'}: this release cannot be approved until the group grows.`,
      );
    }
  }

  return {
    ok: true,
    plan: {
      app: req.app,
      version: req.version,
      environment: envName,
      regions,
      factors: factorNames,
      approvals: {
        requirements,
        allowSelfApproval: leaf(leaves, 'approvals.allowSelfApproval'),
        expiresAfter: leaf(leaves, 'approvals.expiresAfter'),
      },
      batches,
      gate: {
        pause: gatePause,
        maxRestarts: leaf(leaves, 'gate.maxRestarts'),
        onFailure: leaf(leaves, 'gate.onFailure'),
        progressDeadline: leaf(leaves, 'gate.progressDeadline'),
      },
      skip: {
        prewarm: leaf(leaves, 'skip.prewarm'),
        syncVerification: leaf(leaves, 'skip.syncVerification'),
      },
      priority: leaf(leaves, 'priority'),
      releaseWindowBypass: leaf(leaves, 'releaseWindowBypass'),
      promotionRule,
      regionOrder: leaf(leaves, 'regions.order'),
      continueOnRegionFailure: leaf(leaves, 'regions.continueOnFailure'),
      whenBusy: leaf(leaves, 'whenBusy'),
      analysis: {
        interval: leaf(leaves, 'analysis.interval'),
        duration: leaf(leaves, 'analysis.duration'),
        checks: steps.checks,
        webhooks: steps.webhooks,
      },
      factorUses,
      notes,
    },
  };
}

/** Resolves a batch size against the replica count: the cumulative pods on the new version after the batch. */
export function podsAfterBatch(size: string, replicas: number): number {
  if (size.endsWith('%')) {
    const pct = Number(size.slice(0, -1));
    return Math.min(replicas, Math.max(1, Math.ceil((replicas * pct) / 100)));
  }
  return Math.min(replicas, Number(size));
}

/** The plan as lines a person reads: every setting with the layer that set it. */
export function explainPlan(plan: Plan): string[] {
  const by = (s: Setting<unknown>) => `(${s.source})`;
  const a = plan.approvals;
  const lines: string[] = [
    `Release ${plan.app} ${plan.version} to ${plan.environment}${plan.factors.length ? ` with ${plan.factors.join(', ')}` : ''}`,
    `regions: ${plan.regions.value.join(' → ')} ${by(plan.regions)}`,
    `region order: ${plan.regionOrder.value} ${by(plan.regionOrder)}`,
    `on a region failing: ${plan.continueOnRegionFailure.value ? 'the other regions go on' : 'the regions after it stop'} ${by(plan.continueOnRegionFailure)}`,
    ...approvalRequirements(plan).map((r) =>
      r.factor
        ? `approvals for ${r.factor}: ${r.required.value} from group ${r.group.value}, besides the others ${by(r.required)}`
        : r.required.value === 0
          ? `approvals: none ${by(r.required)}`
          : `approvals: ${r.required.value} ${by(r.required)} from group ${r.group.value} ${by(r.group)}`,
    ),
    ...(approvalRequirements(plan).length > 1
      ? ['each approver counts once, toward one group (default)']
      : []),
    `self-approval: ${a.allowSelfApproval.value ? 'allowed' : 'not allowed'} ${by(a.allowSelfApproval)}`,
    `approvals expire after: ${a.expiresAfter.value} ${by(a.expiresAfter)}`,
    `batches: ${plan.batches.value.length} ${by(plan.batches)}`,
    ...plan.batches.value.map(
      (b, i) =>
        `  batch ${i + 1}: up to ${b.size} of the pods, watch ${b.pause}${b.manualPromotion ? ', then wait for a person to promote' : ''}`,
    ),
    `gate: new pods Ready with at most ${plan.gate.maxRestarts.value} restarts ${by(plan.gate.maxRestarts)}, watched ${plan.gate.pause.value} ${by(plan.gate.pause)}`,
    `on a failing gate: ${plan.gate.onFailure.value === 'rollback' ? 'roll the region back at once' : 'stop and wait for a person'} ${by(plan.gate.onFailure)}`,
    `progress deadline: ${plan.gate.progressDeadline.value} ${by(plan.gate.progressDeadline)}`,
    `pre-warm nodes: ${plan.skip.prewarm.value ? 'skipped' : 'yes'} ${by(plan.skip.prewarm)}`,
    `verify sync before deploy: ${plan.skip.syncVerification.value ? 'skipped' : 'yes'} ${by(plan.skip.syncVerification)}`,
    `queue priority: ${plan.priority.value} (1 runs first) ${by(plan.priority)}`,
    `release window: ${plan.releaseWindowBypass.value ? 'bypassed' : 'respected'} ${by(plan.releaseWindowBypass)}`,
    plan.promotionRule.value.requiresPassed
      ? `promotion rule: ${plan.promotionRule.value.applies ? `must have succeeded in ${plan.promotionRule.value.requiresPassed} first` : `skipped (would need ${plan.promotionRule.value.requiresPassed})`} ${by(plan.promotionRule)}`
      : `promotion rule: none for ${plan.environment} ${by(plan.promotionRule)}`,
    `if another release of ${plan.app} to ${plan.environment} is running: ${plan.whenBusy.value === 'queue' ? 'wait in line' : 'refuse'} ${by(plan.whenBusy)}`,
  ];
  const uses = (plan.factorUses ?? []).map((u) => {
    const approval = approvalRequirements(plan).find((r) => r.factor === u.factor);
    const who = u.requestGroup
      ? `may be used by members of ${u.requestGroup}`
      : `may be used by anyone who may release ${plan.app} to ${plan.environment}`;
    const relaxes = u.relaxes.length ? `; relaxes ${u.relaxes.join(', ')}` : '; relaxes no rule';
    const approved = approval
      ? `; must be approved by ${approval.required.value} of ${approval.group.value}`
      : '';
    return `factor ${u.factor}: ${who}${relaxes}${approved} (factor ${u.factor})`;
  });
  return [...lines, ...explainAnalysis(plan.analysis), ...uses, ...plan.notes.map((n) => `note: ${n}`)];
}
