// A ferry.yaml at the size Ferry is for: 9,000 apps, 3,000 people, 300
// groups. Names are built from words the way a company names services
// (team area + domain noun + role: "payments-ledger-api"); each team owns
// its apps in the team's namespace, has a devs group and an on-call group,
// and rules give each team's groups its own apps. Deterministic (seeded), so
// two runs bench the same config. Written to a temp dir, never committed.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

const AREAS = [
  'payments',
  'checkout',
  'ledger',
  'billing',
  'search',
  'catalog',
  'orders',
  'shipping',
  'identity',
  'fraud',
  'pricing',
  'inventory',
  'loyalty',
  'reviews',
  'ads',
  'growth',
  'media',
  'messaging',
  'maps',
  'risk',
  'support',
  'partners',
  'tax',
  'payroll',
  'fleet',
  'booking',
  'insights',
  'content',
  'recs',
  'notify',
];
const NOUNS = [
  'ledger',
  'cart',
  'invoice',
  'refund',
  'wallet',
  'token',
  'session',
  'profile',
  'quote',
  'offer',
  'rating',
  'stock',
  'route',
  'label',
  'report',
  'event',
  'feed',
  'index',
  'cache',
  'policy',
  'rule',
  'score',
  'queue',
  'export',
  'import',
  'audit',
  'ticket',
  'slot',
  'batch',
  'sync',
];
const ROLES = ['api', 'worker', 'web', 'grpc', 'cron', 'consumer', 'gateway', 'admin', 'stream', 'jobs'];
const FIRST = [
  'alex',
  'sam',
  'kim',
  'lee',
  'noa',
  'ana',
  'joe',
  'eva',
  'max',
  'ivy',
  'tom',
  'zoe',
  'ben',
  'mia',
  'dan',
  'ida',
  'leo',
  'amy',
  'ray',
  'una',
];
const LAST = [
  'smith',
  'garcia',
  'muller',
  'rossi',
  'kowalski',
  'tanaka',
  'silva',
  'novak',
  'dubois',
  'jensen',
  'popescu',
  'ivanova',
  'kim',
  'nguyen',
  'okafor',
  'haddad',
  'larsen',
  'moreau',
  'fischer',
  'costa',
];

export interface ScaleShape {
  apps: number;
  people: number;
  groups: number;
}

export interface GeneratedConfig {
  file: string;
  apps: string[];
  /** app → namespace (its team's). */
  namespaceOf: Map<string, string>;
  teams: string[];
  /** Slack user id of a person who may request (and one who may approve) each team's apps. */
  requesterOf: Map<string, string>;
  approverOf: Map<string, string>;
  environments: string[];
  region: string;
  channels: string[];
}

/** A small deterministic PRNG (mulberry32): the same config every run. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `buildable`: the first `count` apps build from `repo` (the sample app infra/infra.sh builds, tags
 * v1…v4), so releases of them can be carried through for real; the others' repos are names only.
 */
export function generateConfig(
  dir: string,
  shape: ScaleShape,
  context: string,
  buildable: { repo: string; count: number } = { repo: '', count: 0 },
): GeneratedConfig {
  const rand = rng(17);
  // Two groups a team (devs, oncall) plus shared ones (approvers per area, platform, sre).
  const shared = ['platform', 'sre', 'security', ...AREAS.map((a) => `${a}-approvers`)];
  const teamCount = Math.max(1, Math.floor((shape.groups - shared.length) / 2));
  const teams = Array.from({ length: teamCount }, (_, i) => {
    const area = AREAS[i % AREAS.length] as string;
    return `${area}-${Math.floor(i / AREAS.length) + 1}`;
  });
  const region = 'scale';
  const environments = ['staging', 'prod'];

  const people: Record<string, string> = {};
  const personNames: string[] = [];
  for (let i = 0; personNames.length < shape.people; i++) {
    const name = `${FIRST[i % FIRST.length]}-${LAST[Math.floor(i / FIRST.length) % LAST.length]}${i >= 400 ? `-${Math.floor(i / 400)}` : ''}`;
    if (people[name]) continue;
    people[name] = `U${(100000 + i).toString(36).toUpperCase()}`;
    personNames.push(name);
  }
  const groups: Record<string, string[]> = {};
  const perTeam = Math.floor((personNames.length * 0.85) / teams.length);
  teams.forEach((team, t) => {
    const members = personNames.slice(t * perTeam, (t + 1) * perTeam);
    groups[`${team}-devs`] = members;
    groups[`${team}-oncall`] = members.slice(0, Math.max(1, Math.ceil(members.length / 4)));
  });
  const rest = personNames.slice(teams.length * perTeam);
  shared.forEach((g, i) => {
    groups[g] = Array.from({ length: 8 }, (_, k) => rest[(i * 8 + k) % rest.length] as string);
  });

  const apps: Record<string, unknown> = {};
  const appNames: string[] = [];
  const namespaceOf = new Map<string, string>();
  const teamApps = new Map<string, string[]>(teams.map((t) => [t, []]));
  const used = new Set<string>();
  for (let i = 0; appNames.length < shape.apps; i++) {
    const team = teams[i % teams.length] as string;
    const area = team.replace(/-\d+$/, '');
    const noun = NOUNS[Math.floor(rand() * NOUNS.length)] as string;
    const role = ROLES[Math.floor(rand() * ROLES.length)] as string;
    let name = `${area}-${noun}-${role}`;
    for (let k = 2; used.has(name); k++) name = `${area}-${noun}-${role}-${k}`;
    used.add(name);
    appNames.push(name);
    namespaceOf.set(name, team);
    teamApps.get(team)?.push(name);
    apps[name] = {
      repo:
        appNames.length <= buildable.count ? buildable.repo : `https://git.example.com/${team}/${name}.git`,
      stack: rand() < 0.7 ? 'jvm' : 'node',
      owners: [`${team}-devs`],
      channels: {
        releases: `C_REL_${team.toUpperCase().replace(/-/g, '_')}`,
        alerts: `C_ALR_${team.toUpperCase().replace(/-/g, '_')}`,
      },
      defaultEnvironment: 'staging',
      namespace: team,
      workload: { replicas: 1 },
    };
  }
  const channels = [
    ...new Set(
      Object.values(apps).flatMap((a) => Object.values((a as { channels: Record<string, string> }).channels)),
    ),
  ];

  const rules: unknown[] = teams.map((team) => ({
    groups: [`${team}-devs`, `${team}-oncall`],
    apps: teamApps.get(team),
    actions: ['request', 'pause', 'resume', 'abort', 'rollback', 'logs', 'sync', 'silence'],
  }));
  rules.push(
    {
      groups: ['platform'],
      actions: ['request', 'pause', 'resume', 'abort', 'rollback', 'logs', 'sync', 'silence', 'adopt'],
    },
    { groups: ['sre'], actions: ['pause', 'resume', 'abort', 'rollback', 'logs', 'silence'] },
    { groups: AREAS.map((a) => `${a}-approvers`), actions: ['pause', 'resume', 'abort', 'logs'] },
  );

  const config = {
    primaryRegistry: { url: 'http://127.0.0.1:5000', insecure: true },
    regions: { [region]: { registry: { url: 'http://127.0.0.1:5001', insecure: true }, context } },
    stacks: {
      jvm: {
        image: '127.0.0.1:5000/ferry/stack-shell:1',
        logFiles: { app: '/var/log/app/app.log', gc: '/var/log/app/gc.log' },
      },
      node: { image: '127.0.0.1:5000/ferry/stack-shell:1' },
    },
    environments: {
      staging: {
        regions: [region],
        tail: { env: { FERRY_ENV: 'staging' } },
        plan: { approvals: { required: 0 }, batches: [{ size: '100%' }], gate: { pause: '1s' } },
      },
      prod: {
        regions: [region],
        tail: { env: { FERRY_ENV: 'prod' } },
        plan: {
          approvals: { required: 1, group: 'platform', expiresAfter: '4h' },
          batches: [{ size: 1 }, { size: '100%' }],
          gate: { pause: '1s' },
        },
      },
    },
    apps,
    people,
    groups,
    rules,
    sync: [{ environments: ['*'], regions: [region] }],
  };
  const file = join(dir, 'ferry.yaml');
  writeFileSync(file, stringify(config, { lineWidth: 0 }));
  const requesterOf = new Map<string, string>();
  const approverOf = new Map<string, string>();
  for (const team of teams) {
    const dev = groups[`${team}-devs`]?.[0];
    if (dev) requesterOf.set(team, people[dev] as string);
    approverOf.set(team, people[groups['platform']?.[0] as string] as string);
  }
  return {
    file,
    apps: appNames,
    namespaceOf,
    teams,
    requesterOf,
    approverOf,
    environments,
    region,
    channels,
  };
}
