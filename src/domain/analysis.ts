// Judging a batch by what the new version does. The plan carries analysis
// steps (from the environment and the factors, each remembering its layer):
// threshold checks on the new pods, and comparisons of the new pods against
// the old ones, measured every `interval` for `duration` at each batch gate.
// This module is the judgement only: it gets numbers, never a client, so the
// same measurements always give the same verdict.
//
// Verdicts are three, as in Argo Rollouts and Kayenta: pass, fail and
// inconclusive. Inconclusive (no data, too few samples, Prometheus not
// answering) is never a pass: the release stops and waits for a person, who
// continues or rolls back with the card's buttons. Ferry does not roll back
// by itself on inconclusive, because "we could not look" is not evidence that
// the version is bad, and under `degraded` a rollback returns to the broken
// version.
import type { Setting, Source } from './setting.ts';

export type Comparison =
  | {
      test: 'mann-whitney';
      /** Significance: the new pods fail when they are worse with p below this. */
      alpha: number;
      /** Fewest valid measurements on each side for a judgement. */
      minSamples: number;
    }
  | {
      test: 'ratio';
      /** New fails when its mean exceeds the old mean × maxRatio (+ margin). */
      maxRatio: number;
      /** Absolute slack, so that old 0 errors vs new 0.001 is not "infinitely worse". */
      margin: number;
      minSamples: number;
    };

export interface AnalysisCheck {
  name: string;
  /** PromQL with $selector (the pods judged), $app, $env, $region, $namespace, $version. */
  query: string;
  /** Threshold on the new pods: a measurement above max or below min fails. */
  max?: number;
  min?: number;
  /** New against old: the same query over both, compared. */
  compare?: Comparison;
  /** For comparisons: which direction is worse. */
  worseWhen: 'higher' | 'lower';
  /** Failed measurements tolerated before the check fails (Argo's failureLimit). */
  failureLimit: number;
}

export type WebhookKind = 'pre-rollout' | 'confirm-promotion' | 'post-rollout';

export interface WebhookStep {
  name: string;
  kind: WebhookKind;
  url: string;
  timeout: string;
  /** Attempts after the first, on a network error, a timeout or a 5xx. A 4xx is an answer. */
  retries: number;
  /** Environment variable holding the HMAC key; the payload is signed when set. */
  secretEnv?: string;
}

export interface AnalysisPlan {
  interval: Setting<string>;
  duration: Setting<string>;
  checks: Setting<AnalysisCheck>[];
  webhooks: Setting<WebhookStep>[];
}

/** What a query is about: the pods of one app, environment and region, new or old. */
export interface QueryScope {
  app: string;
  env: string;
  region: string;
  namespace: string;
  version: string;
}

/** PromQL label values are double-quoted strings: escape what would end them. */
function quote(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The query for the new pods (version = the release's) or the old ones (any other version). */
export function expandQuery(query: string, scope: QueryScope, track: 'new' | 'old'): string {
  const selector = [
    `app=${quote(scope.app)}`,
    `env=${quote(scope.env)}`,
    `region=${quote(scope.region)}`,
    `namespace=${quote(scope.namespace)}`,
    `version${track === 'new' ? '=' : '!='}${quote(scope.version)}`,
  ].join(',');
  const values: Record<string, string> = {
    selector,
    app: scope.app,
    env: scope.env,
    region: scope.region,
    namespace: scope.namespace,
    version: scope.version,
  };
  return query.replace(/\$(selector|app|env|region|namespace|version)\b/g, (_, k: string) => values[k] ?? '');
}

/** One measurement: a number, or why there is none. */
export type Measurement = { value: number } | { missing: string };

export interface CheckSeries {
  /** When each measurement was taken (ms). */
  at: number[];
  new: Measurement[];
  /** Only for comparisons. */
  old?: Measurement[];
}

export type Verdict = 'pass' | 'fail' | 'inconclusive';

export interface CheckResult {
  check: string;
  source: Source;
  verdict: Verdict;
  /** One line a person reads: what was measured against what. */
  detail: string;
}

export const valuesOf = (ms: Measurement[]): number[] =>
  ms.flatMap((m) => ('value' in m && Number.isFinite(m.value) ? [m.value] : []));

const fmt = (n: number): string =>
  !Number.isFinite(n) ? String(n) : Math.abs(n) >= 100 ? n.toFixed(0) : Number(n.toPrecision(3)).toString();

/** Did one measurement breach the check's thresholds? */
export function breaches(check: Pick<AnalysisCheck, 'max' | 'min'>, value: number): boolean {
  return (check.max !== undefined && value > check.max) || (check.min !== undefined && value < check.min);
}

/**
 * A threshold check so far. `final` is false while measuring: a check that
 * already failed more than its limit fails at once (no point watching a
 * version serve errors for the rest of the duration); anything else waits
 * for the end.
 */
export function judgeThreshold(
  check: AnalysisCheck,
  source: Source,
  s: CheckSeries,
  final: boolean,
): CheckResult | null {
  const vals = valuesOf(s.new);
  const failed = vals.filter((v) => breaches(check, v));
  const bound = [
    check.min !== undefined ? `≥ ${fmt(check.min)}` : '',
    check.max !== undefined ? `≤ ${fmt(check.max)}` : '',
  ]
    .filter(Boolean)
    .join(' and ');
  if (failed.length > check.failureLimit) {
    return {
      check: check.name,
      source,
      verdict: 'fail',
      detail: `${check.name}: ${failed.length} of ${vals.length} measurements outside ${bound} (worst ${fmt(worst(check, failed))}, ${check.failureLimit} allowed)`,
    };
  }
  if (!final) return null;
  const missing = s.new.length - vals.length;
  // More than half the measurements without a value: not enough to call it good.
  if (vals.length === 0 || missing * 2 > s.new.length) {
    const why = s.new.find((m): m is { missing: string } => 'missing' in m)?.missing ?? 'no measurement';
    return {
      check: check.name,
      source,
      verdict: 'inconclusive',
      detail: `${check.name}: ${vals.length} of ${s.new.length} measurements had a value (${why})`,
    };
  }
  return {
    check: check.name,
    source,
    verdict: 'pass',
    detail: `${check.name}: ${vals.length} measurements within ${bound} (last ${fmt(vals[vals.length - 1] as number)})`,
  };
}

function worst(check: Pick<AnalysisCheck, 'max' | 'min'>, vals: number[]): number {
  return check.max !== undefined ? Math.max(...vals) : Math.min(...vals);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Standard normal CDF (Abramowitz–Stegun 7.1.26 through erf), enough for a p-value. */
function normalCdf(z: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(z / Math.SQRT2));
  const poly =
    t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-(z * z) / 2);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/**
 * One-sided Mann-Whitney U test (normal approximation with tie correction,
 * continuity correction), as Kayenta's judge uses: the probability of seeing
 * `a` this much larger than `b` if both came from the same distribution.
 */
export function mannWhitneyGreater(a: number[], b: number[]): { u: number; p: number } {
  const n1 = a.length;
  const n2 = b.length;
  const all = [...a.map((v) => ({ v, g: 0 })), ...b.map((v) => ({ v, g: 1 }))].sort((x, y) => x.v - y.v);
  const ranks = new Array<number>(all.length);
  let tie = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j + 1 < all.length && (all[j + 1] as { v: number }).v === (all[i] as { v: number }).v) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[k] = r;
    const t = j - i + 1;
    tie += t * t * t - t;
    i = j + 1;
  }
  let r1 = 0;
  all.forEach((x, i) => {
    if (x.g === 0) r1 += ranks[i] as number;
  });
  const u = r1 - (n1 * (n1 + 1)) / 2;
  const n = n1 + n2;
  const sigma = Math.sqrt(((n1 * n2) / 12) * (n + 1 - tie / (n * (n - 1))));
  if (sigma === 0) return { u, p: 1 };
  const z = (u - (n1 * n2) / 2 - 0.5) / sigma;
  return { u, p: 1 - normalCdf(z) };
}

/** New against old, at the end of the measuring (a comparison needs all its samples). */
export function judgeComparison(check: AnalysisCheck, source: Source, s: CheckSeries): CheckResult {
  const cmp = check.compare as Comparison;
  const nv = valuesOf(s.new);
  const ov = valuesOf(s.old ?? []);
  if (nv.length < cmp.minSamples || ov.length < cmp.minSamples) {
    return {
      check: check.name,
      source,
      verdict: 'inconclusive',
      detail: `${check.name}: ${nv.length} new and ${ov.length} old measurements, ${cmp.minSamples} of each needed`,
    };
  }
  const higher = check.worseWhen === 'higher';
  const [mn, mo] = [mean(nv), mean(ov)];
  if (cmp.test === 'ratio') {
    const limit = higher ? mo * cmp.maxRatio + cmp.margin : mo / cmp.maxRatio - cmp.margin;
    const bad = higher ? mn > limit : mn < limit;
    return {
      check: check.name,
      source,
      verdict: bad ? 'fail' : 'pass',
      detail: `${check.name}: new ${fmt(mn)} against old ${fmt(mo)}, ${higher ? 'at most' : 'at least'} ${fmt(limit)} allowed (ratio ${cmp.maxRatio}${cmp.margin ? ` + ${fmt(cmp.margin)}` : ''})`,
    };
  }
  const { p } = higher ? mannWhitneyGreater(nv, ov) : mannWhitneyGreater(ov, nv);
  const bad = p < cmp.alpha;
  return {
    check: check.name,
    source,
    verdict: bad ? 'fail' : 'pass',
    detail: `${check.name}: new ${fmt(mn)} against old ${fmt(mo)} (mean), Mann-Whitney p=${fmt(p)}${bad ? ` < ${cmp.alpha}: new is ${higher ? 'higher' : 'lower'}` : ` ≥ ${cmp.alpha}`}`,
  };
}

/** The batch's verdict: the worst of its checks (fail, then inconclusive). */
export function overallVerdict(results: CheckResult[]): Verdict {
  if (results.some((r) => r.verdict === 'fail')) return 'fail';
  if (results.some((r) => r.verdict === 'inconclusive')) return 'inconclusive';
  return 'pass';
}

/** What the rollout does with a verdict, given the plan's on-failure rule. */
export function afterVerdict(
  verdict: Verdict,
  onFailure: 'rollback' | 'wait',
): 'continue' | 'rollback' | 'hold' {
  if (verdict === 'pass') return 'continue';
  if (verdict === 'inconclusive') return 'hold';
  return onFailure === 'rollback' ? 'rollback' : 'hold';
}

/** Lines for `ferry explain` / the plan card: each step with the layer that set it. */
export function explainAnalysis(a: AnalysisPlan | undefined): string[] {
  if (!a || (a.checks.length === 0 && a.webhooks.length === 0))
    return ['analysis: no metric checks or webhooks, readiness and restarts only (default)'];
  const by = (s: Setting<unknown>) => `(${s.source})`;
  const lines = [
    `analysis: measured every ${a.interval.value} ${by(a.interval)} for ${a.duration.value} ${by(a.duration)} at each batch gate; Prometheus not answering or no data is inconclusive: wait for a person`,
  ];
  for (const c of a.checks) {
    const k = c.value;
    const what = k.compare
      ? k.compare.test === 'ratio'
        ? `new vs old pods, ${k.worseWhen} is worse, fails above ×${k.compare.maxRatio}${k.compare.margin ? ` + ${k.compare.margin}` : ''} of old, ≥ ${k.compare.minSamples} samples each`
        : `new vs old pods, ${k.worseWhen} is worse, Mann-Whitney at α=${k.compare.alpha}, ≥ ${k.compare.minSamples} samples each`
      : `new pods ${[k.min !== undefined ? `≥ ${k.min}` : '', k.max !== undefined ? `≤ ${k.max}` : ''].filter(Boolean).join(' and ')}, ${k.failureLimit} failed measurement${k.failureLimit === 1 ? '' : 's'} allowed`;
    lines.push(`  check ${k.name}: ${what} ${by(c)}`);
  }
  for (const w of a.webhooks) {
    const h = w.value;
    lines.push(
      `  webhook ${h.name}: ${h.kind} ${h.url}, timeout ${h.timeout}, ${h.retries} retr${h.retries === 1 ? 'y' : 'ies'}${h.secretEnv ? ', HMAC-signed' : ', unsigned'} ${by(w)}`,
    );
  }
  return lines;
}
