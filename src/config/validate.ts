// Cross-references in a parsed config: names that must point at something.

import type { FerryConfig } from '../domain/config.ts';
import { DEFAULT_FACTORS } from '../domain/factors.ts';
import { defines, lookup } from '../domain/lookup.ts';
import { relaxedRules } from '../domain/plan.ts';
import { RELEASE_ID, RESERVED_WORDS } from '../domain/words.ts';
import { placementOf } from '../domain/workload.ts';

export interface RefProblem {
  path: (string | number)[];
  message: string;
}

function known(kind: string, names: Iterable<string>): string {
  const list = [...names];
  return list.length ? `known ${kind}: ${list.join(', ')}` : `no ${kind} are defined`;
}

/**
 * known(), built once per list: the messages are written for every check, passing or not, and a
 * large config checks thousands of names against lists of hundreds.
 */
function knownOnce(): (kind: string, names: readonly string[]) => string {
  const said = new Map<readonly string[], string>();
  return (kind, names) => {
    const text = said.get(names) ?? known(kind, names);
    said.set(names, text);
    return text;
  };
}

/** A DNS-1123 label: what Kubernetes takes as a namespace, a container or a label value. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Why `value` is no DNS-1123 label Kubernetes would take (lower-case letters, digits and '-',
 * starting and ending with a letter or digit, at most `max` characters), or undefined when it is one.
 */
export function dnsLabelProblem(value: string, max = 63): string | undefined {
  if (value.length === 0) return 'is empty';
  if (value.length > max) return `is ${value.length} characters long; at most ${max}`;
  if (!DNS_LABEL.test(value))
    return "must be lower-case letters, digits and '-', starting and ending with a letter or digit";
  return undefined;
}

export function crossReferenceProblems(c: FerryConfig): RefProblem[] {
  const out: RefProblem[] = [];
  const regions = Object.keys(c.regions);
  const envs = Object.keys(c.environments);
  const groups = Object.keys(c.groups);
  const people = Object.keys(c.people);
  const stacks = Object.keys(c.stacks);
  const known = knownOnce();
  const check = (ok: boolean, path: (string | number)[], message: string) => {
    if (!ok) out.push({ path, message });
  };
  const inList = (list: string[], name: string) => list.includes(name);
  // `defines` on the map, not a list of its keys: rules name apps by the thousand in a large config.
  const wildcardOr = (table: object, name: string) => name === '*' || defines(table, name);

  for (const [name, env] of Object.entries(c.environments)) {
    env.regions.forEach((r, i) => {
      check(
        inList(regions, r),
        ['environments', name, 'regions', i],
        `unknown region "${r}"; ${known('regions', regions)}`,
      );
    });
    if (env.requiresPassed) {
      check(
        inList(envs, env.requiresPassed) && env.requiresPassed !== name,
        ['environments', name, 'requiresPassed'],
        `"${env.requiresPassed}" is not another environment; ${known('environments', envs)}`,
      );
    }
    const g = env.plan.approvals?.group;
    if (g)
      check(
        defines(c.groups, g),
        ['environments', name, 'plan', 'approvals', 'group'],
        `unknown group "${g}"; ${known('groups', groups)}`,
      );
    check(
      !RESERVED_WORDS.has(name),
      ['environments', name],
      `"${name}" is a word of the command grammar and cannot name an environment`,
    );
  }
  // Promotion rules must not loop (test → uat → test would block every release).
  for (const start of envs) {
    const seen = new Set<string>();
    let cur: string | undefined = start;
    while (cur && defines(c.environments, cur)) {
      if (seen.has(cur)) {
        out.push({
          path: ['environments', start, 'requiresPassed'],
          message: `the promotion rule loops: ${[...seen, cur].join(' → ')}`,
        });
        break;
      }
      seen.add(cur);
      cur = lookup(c.environments, cur)?.requiresPassed;
    }
  }
  for (const [name, app] of Object.entries(c.apps)) {
    check(
      !RESERVED_WORDS.has(name),
      ['apps', name],
      `"${name}" is a word of the command grammar and cannot name an app`,
    );
    check(
      !RELEASE_ID.test(name),
      ['apps', name],
      `"${name}" looks like a release id (r<number>) and cannot name an app`,
    );
    // The names Ferry gives Kubernetes: checked here, where the file and line are known, rather than
    // refused by the API server in the middle of a rollout (or, worse, read as a path: "a/../b").
    const kubeNames: [string, string | undefined, (string | number)[], number][] = [
      ['app name', name, ['apps', name], 63],
      // namespace and deployment are patterns; placementProblems checks what they expand to
      ['container', app.container, ['apps', name, 'container'], 63],
    ];
    for (const [what, value, path, max] of kubeNames) {
      const problem = value === undefined ? undefined : dnsLabelProblem(value, max);
      check(
        problem === undefined,
        path,
        `${what} "${value}" ${problem}: Kubernetes takes only DNS-1123 labels`,
      );
    }
    check(
      defines(c.stacks, app.stack),
      ['apps', name, 'stack'],
      `unknown stack "${app.stack}"; ${known('stacks', stacks)}`,
    );
    check(
      inList(envs, app.defaultEnvironment),
      ['apps', name, 'defaultEnvironment'],
      `unknown environment "${app.defaultEnvironment}"; ${known('environments', envs)}`,
    );
    app.owners.forEach((o, i) => {
      check(
        defines(c.groups, o) || defines(c.people, o),
        ['apps', name, 'owners', i],
        `"${o}" is neither a group nor a person`,
      );
    });
  }
  // A team is a group (an app's owners name groups); a team route needs a team to route to.
  for (const team of Object.keys(c.teams)) {
    check(
      defines(c.groups, team),
      ['teams', team],
      `"${team}" is not a group; ${known('groups', Object.keys(c.groups))}`,
    );
  }
  c.alerts.routes.forEach((r, i) => {
    for (const [j, e] of r.environments.entries())
      check(
        e === '*' || inList(envs, e),
        ['alerts', 'routes', i, 'environments', j],
        `unknown environment "${e}"; ${known('environments', envs)}`,
      );
    for (const [j, a] of r.apps.entries())
      check(
        a === '*' || defines(c.apps, a),
        ['alerts', 'routes', i, 'apps', j],
        `unknown app "${a}"; ${known('apps', Object.keys(c.apps))}`,
      );
  });
  out.push(...placementProblems(c));
  for (const [name, f] of Object.entries(c.factors)) {
    check(
      !RESERVED_WORDS.has(name),
      ['factors', name],
      `"${name}" is a word of the command grammar and cannot name a factor`,
    );
    check(
      !defines(c.environments, name),
      ['factors', name],
      `"${name}" is also an environment; a word must mean one thing`,
    );
    f.excludes.forEach((x, i) => {
      check(
        defines(c.factors, x),
        ['factors', name, 'excludes', i],
        `unknown factor "${x}"; ${known('factors', Object.keys(c.factors))}`,
      );
    });
    // A factor that relaxes a rule must say who vouches for it. Refused here
    // rather than quietly treated as not relaxing: the file would otherwise
    // say one thing and Ferry do another.
    const relaxes = relaxedRules(f, c);
    check(
      relaxes.length === 0 || f.authority !== undefined,
      ['factors', name],
      `relaxes ${relaxes.join(' and ')} but declares no authority; add \`authority: { request: <group>, approve: <group>, approvals: 1 }\` (who may ask for it, and who must approve it besides the environment's approvers)`,
    );
    check(
      !(f.requestGroup && f.authority?.request),
      ['factors', name, 'requestGroup'],
      'both requestGroup and authority.request say who may use this factor; keep authority.request',
    );
    // Built-in factors may name groups a config does not define; the planner
    // then refuses the factor (with an authority) or falls back to the
    // environment's group (approvals effect), and says so.
    if (lookup(DEFAULT_FACTORS, name) === f) continue;
    for (const key of ['request', 'approve'] as const) {
      const group = f.authority?.[key];
      if (group)
        check(
          defines(c.groups, group),
          ['factors', name, 'authority', key],
          `unknown group "${group}"; ${known('groups', groups)}`,
        );
    }
    const g = f.effects.approvals?.group;
    if (g)
      check(
        defines(c.groups, g),
        ['factors', name, 'effects', 'approvals', 'group'],
        `unknown group "${g}"; ${known('groups', groups)}`,
      );
    if (f.requestGroup)
      check(
        defines(c.groups, f.requestGroup),
        ['factors', name, 'requestGroup'],
        `unknown group "${f.requestGroup}"`,
      );
  }
  for (const [name, members] of Object.entries(c.groups)) {
    members.forEach((m, i) => {
      check(defines(c.people, m), ['groups', name, i], `unknown person "${m}"; ${known('people', people)}`);
    });
  }
  c.rules.forEach((rule, i) => {
    rule.groups.forEach((g, j) => {
      check(
        defines(c.groups, g),
        ['rules', i, 'groups', j],
        `unknown group "${g}"; ${known('groups', groups)}`,
      );
    });
    rule.apps.forEach((a, j) => {
      check(wildcardOr(c.apps, a), ['rules', i, 'apps', j], `unknown app "${a}"`);
    });
    rule.environments.forEach((e, j) => {
      check(
        wildcardOr(c.environments, e),
        ['rules', i, 'environments', j],
        `unknown environment "${e}"; ${known('environments', envs)}`,
      );
    });
  });
  c.sync.forEach((rule, i) => {
    rule.regions.forEach((r, j) => {
      check(
        inList(regions, r),
        ['sync', i, 'regions', j],
        `unknown region "${r}"; ${known('regions', regions)}`,
      );
    });
    rule.apps.forEach((a, j) => {
      check(wildcardOr(c.apps, a), ['sync', i, 'apps', j], `unknown app "${a}"`);
    });
    rule.environments.forEach((e, j) => {
      check(wildcardOr(c.environments, e), ['sync', i, 'environments', j], `unknown environment "${e}"`);
    });
  });
  return out;
}

/**
 * Every (app, environment, region) must get a workload of its own, with names
 * Kubernetes accepts once the patterns are expanded. Two environments that
 * resolve to one Deployment in one region would move each other's pods.
 */
function placementProblems(c: FerryConfig): RefProblem[] {
  const out: RefProblem[] = [];
  const taken = new Map<string, string>();
  // one problem per config field, however many environments and regions expand it
  const named = new Set<string>();
  for (const [app, a] of Object.entries(c.apps)) {
    for (const env of Object.keys(a.environments ?? {})) {
      if (!defines(c.environments, env))
        out.push({
          path: ['apps', app, 'environments', env],
          message: `unknown environment "${env}"; ${known('environments', Object.keys(c.environments))}`,
        });
    }
    for (const [env, e] of Object.entries(c.environments)) {
      const override = a.environments && lookup(a.environments, env);
      for (const region of e.regions) {
        if (!defines(c.regions, region)) continue;
        const p = placementOf(c, app, env, region);
        const at = (field: 'namespace' | 'deployment'): (string | number)[] =>
          override?.[field] !== undefined
            ? ['apps', app, 'environments', env, field]
            : a[field] !== undefined
              ? ['apps', app, field]
              : ['workloads', field];
        for (const [field, value] of [
          ['namespace', p.namespace],
          ['deployment', p.name],
        ] as const) {
          // Ferry's second track is the Deployment "<name>-b", which must fit too.
          const problem = dnsLabelProblem(value, field === 'deployment' ? 61 : 63);
          const path = at(field);
          const said = path.join('.');
          if (problem && !named.has(said)) {
            named.add(said);
            out.push({
              path,
              message: `${field} "${value}"${value === (override?.[field] ?? a[field]) ? '' : ` (for ${app} in ${env}/${region})`} ${problem}: Kubernetes takes only DNS-1123 labels`,
            });
          }
        }
        // a name Kubernetes would refuse is reported above; sharing it is beside the point
        if (dnsLabelProblem(p.namespace) || dnsLabelProblem(p.name, 61)) continue;
        const key = `${region}/${p.namespace}/${p.name}`;
        const first = taken.get(key);
        if (first && first !== `${app}/${env}`)
          out.push({
            path: at('deployment'),
            message: `${app} in ${env} and ${first.replace('/', ' in ')} would share the Deployment ${p.namespace}/${p.name} in ${region}; environments never share a workload. Put {env} in the pattern (default "{app}-{env}") or set apps.${app}.environments.${env}.deployment`,
          });
        else taken.set(key, `${app}/${env}`);
      }
    }
  }
  return out;
}
