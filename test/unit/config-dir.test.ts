// A config directory (ferry.d/*.yaml): files merged into one config, a name
// or a one-file section defined twice refused with both files and lines, and
// every later problem traced to the file and line that wrote it. Then the
// holder that reloads it: applied, unchanged, refused once per content, and
// the file events editors and Kubernetes ConfigMaps produce.
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configCheck } from '../../src/cli/main.ts';
import { LiveConfig } from '../../src/config/live.ts';
import { type ConfigProblem, loadConfigFile } from '../../src/config/load.ts';
import { EXAMPLE_CONFIG_PATH } from '../support/config.ts';

const example = readFileSync(EXAMPLE_CONFIG_PATH, 'utf8');

function team(name: string, apps: string[], extra = ''): string {
  return [
    'people:',
    `  ${name}-lead: U_${name.toUpperCase().replace(/-/g, '_')}`,
    'groups:',
    `  ${name}: [${name}-lead]`,
    'apps:',
    ...apps.flatMap((app) => [
      `  ${app}:`,
      `    repo: https://git.example.com/${name}/${app}.git`,
      '    stack: shell',
      `    owners: [${name}]`,
      `    channels: { releases: C_${name.toUpperCase().replace(/-/g, '_')}, alerts: C_ALERTS }`,
      '    defaultEnvironment: test',
    ]),
    'rules:',
    `  - groups: [${name}]`,
    `    apps: [${apps.join(', ')}]`,
    '    actions: [request, logs]',
    extra,
  ].join('\n');
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function configDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-d-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

function lineOf(text: string, needle: string, from = 0): number {
  const lines = text.split('\n');
  const i = lines.findIndex((l, n) => n >= from && l.includes(needle));
  if (i < 0) throw new Error(`no line with ${needle}`);
  return i + 1;
}

function problemsOf(path: string): ConfigProblem[] {
  const r = loadConfigFile(path);
  if (r.ok) throw new Error('expected problems');
  return r.problems;
}

describe('a config directory', () => {
  it('merges the files: name sections by name, lists in file order; `ferry config check` takes the directory', () => {
    const dir = configDir({
      '00-platform.yaml': example,
      'team-a.yaml': team('team-a', ['a-api', 'a-web']),
      'team-b.yaml': team('team-b', ['b-api']),
      'notes.txt': 'not yaml: not read',
      '.hidden.yaml': 'not: [valid',
    });
    const r = loadConfigFile(dir);
    if (!r.ok) throw new Error(r.problems.map((p) => p.message).join('\n'));
    expect(Object.keys(r.config.apps)).toEqual([
      'payments',
      'checkout',
      'ledger',
      'billing',
      'a-api',
      'a-web',
      'b-api',
    ]);
    expect(r.config.groups['team-b']).toEqual(['team-b-lead']);
    // the platform's four rules, then team-a's, then team-b's
    expect(r.config.rules.map((rule) => rule.groups[0])).toEqual([
      'payments-devs',
      'checkout-devs',
      'approvers',
      'platform',
      'team-a',
      'team-b',
    ]);
    // merged maps keep no prototype, like a single file's
    expect(Object.getPrototypeOf(r.config.apps)).toBe(null);
    const out: string[] = [];
    expect(configCheck(dir, { out: (l) => out.push(l), err: (l) => out.push(l) })).toBe(0);
    expect(out[0]).toContain('ok — 7 apps');
  });

  it.each([
    ['app', 'apps', 'a-api'],
    ['group', 'groups', 'team-a'],
    ['person', 'people', 'team-a-lead'],
  ])('refuses an %s defined in two files, naming both files and lines', (kind, _section, name) => {
    const a = team('team-a', ['a-api']);
    // team-c redefines one of team-a's names
    const c = team('team-c', ['c-api'])
      .replace('  c-api:', kind === 'app' ? '  a-api:' : '  c-api:')
      .replace('apps: [c-api]', kind === 'app' ? 'apps: [a-api]' : 'apps: [c-api]')
      .replace(
        '  team-c: [team-c-lead]',
        kind === 'group' ? '  team-a: [team-c-lead]' : '  team-c: [team-c-lead]',
      )
      .replace(
        '  team-c-lead: U_TEAM_C',
        kind === 'person' ? '  team-a-lead: U_TEAM_C' : '  team-c-lead: U_TEAM_C',
      );
    const dir = configDir({ '00-platform.yaml': example, 'team-a.yaml': a, 'team-c.yaml': c });
    const section = kind === 'app' ? 'apps:' : kind === 'group' ? 'groups:' : 'people:';
    const firstLine = lineOf(a, `  ${name}:`, lineOf(a, section));
    const secondLine = lineOf(c, `  ${name}:`, lineOf(c, section));
    expect(problemsOf(dir)).toEqual([
      {
        file: join(dir, 'team-c.yaml'),
        line: secondLine,
        path: `${_section}.${name}`,
        message: `${kind} "${name}" is defined twice: here and at ${join(dir, 'team-a.yaml')}:${firstLine}`,
      },
    ]);
  });

  it('refuses an environment defined in two files and a one-file section set twice', () => {
    const extra =
      'environments:\n  test:\n    regions: [eu-west]\nprimaryRegistry:\n  url: http://127.0.0.1:5000\n';
    const dir = configDir({ '00-platform.yaml': example, 'zz-extra.yaml': extra });
    const problems = problemsOf(dir);
    expect(problems.map((p) => [p.file, p.line, p.path])).toEqual([
      [join(dir, 'zz-extra.yaml'), 2, 'environments.test'],
      [join(dir, 'zz-extra.yaml'), 4, 'primaryRegistry'],
    ]);
    expect(problems[0]?.message).toBe(
      `environment "test" is defined twice: here and at ${join(dir, '00-platform.yaml')}:${lineOf(example, '  test:')}`,
    );
    expect(problems[1]?.message).toBe(
      `"primaryRegistry" is set in two files: here and at ${join(dir, '00-platform.yaml')}:${lineOf(example, 'primaryRegistry:')}; set it in one`,
    );
  });

  it('reports schema and cross-reference problems at the file and line of the team file that wrote them', () => {
    const a = team('team-a', ['a-api']);
    const b = team('team-b', ['b-api', 'b-web'])
      .replace(
        '    stack: shell\n    owners: [team-b]\n    channels: { releases: C_TEAM_B, alerts: C_ALERTS }\n    defaultEnvironment: test\n  b-web',
        '    stack: shell\n    owners: [team-b]\n    channels: { releases: C_TEAM_B, alerts: C_ALERTS }\n    defaultEnvironment: staging\n  b-web',
      )
      .replace(
        '    actions: [request, logs]',
        '    actions: [request, logs]\n  - groups: [team-z]\n    actions: [logs]',
      );
    const dir = configDir({ '00-platform.yaml': example, 'team-a.yaml': a, 'team-b.yaml': b });
    expect(problemsOf(dir).map((p) => `${p.file}:${p.line}: ${p.path}`)).toEqual([
      `${join(dir, 'team-b.yaml')}:${lineOf(b, 'defaultEnvironment: staging')}: apps.b-api.defaultEnvironment`,
      // the sixth rule of the merged config is the second of team-b.yaml
      `${join(dir, 'team-b.yaml')}:${lineOf(b, 'team-z')}: rules[6].groups[0]`,
    ]);
    // a schema problem: an unknown key, at its line in the team file
    const typo = a.replace('    defaultEnvironment: test', '    defaultEnvironment: test\n    replicas: 3');
    writeFileSync(join(dir, 'team-a.yaml'), typo);
    writeFileSync(join(dir, 'team-b.yaml'), team('team-b', ['b-api']));
    expect(problemsOf(dir).map((p) => `${p.file}:${p.line}: ${p.path}`)).toEqual([
      `${join(dir, 'team-a.yaml')}:${lineOf(typo, 'replicas: 3')}: apps.a-api.replicas`,
    ]);
  });

  it('reports a key written twice in one file at the second one, and an empty directory', () => {
    const dup = team('team-a', ['a-api', 'a-api']);
    const dir = configDir({ '00-platform.yaml': example, 'team-a.yaml': dup });
    const second = lineOf(dup, '  a-api:', lineOf(dup, '  a-api:'));
    expect(problemsOf(dir)).toEqual([
      {
        file: join(dir, 'team-a.yaml'),
        line: second,
        path: 'apps.a-api',
        message: '"a-api" is defined twice in this map; map keys must be unique',
      },
    ]);
    const empty = configDir({});
    expect(problemsOf(empty)[0]?.message).toBe('no *.yaml files in the config directory');
  });
});

async function until<T>(probe: () => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('LiveConfig', () => {
  let live: LiveConfig | undefined;
  afterEach(() => live?.close());

  it('applies a valid change, keeps the running config on an invalid one and reports each refused content once', () => {
    const dir = configDir({ '00-platform.yaml': example, 'team-a.yaml': team('team-a', ['a-api']) });
    const refused: ConfigProblem[][] = [];
    const changes: string[][] = [];
    live = LiveConfig.load(dir, { onRefused: (p) => void refused.push(p) });
    live.onChange((c, before) => changes.push([...Object.keys(before.apps), '→', ...Object.keys(c.apps)]));
    expect(live.reload()).toEqual({ kind: 'unchanged' });

    writeFileSync(join(dir, 'team-b.yaml'), team('team-b', ['b-api']));
    expect(live.reload().kind).toBe('applied');
    expect(Object.keys(live.get().apps)).toContain('b-api');
    expect(changes).toHaveLength(1);

    const broken = team('team-c', ['c-api']).replace('stack: shell', 'stack: cobol');
    writeFileSync(join(dir, 'team-c.yaml'), broken);
    const r1 = live.reload();
    expect(r1).toMatchObject({ kind: 'refused', again: false });
    expect(live.get().apps['c-api']).toBeUndefined();
    expect(Object.keys(live.get().apps)).toContain('b-api');
    expect(refused).toEqual([
      [
        {
          file: join(dir, 'team-c.yaml'),
          line: lineOf(broken, 'stack: cobol'),
          path: 'apps.c-api.stack',
          message: 'unknown stack "cobol"; known stacks: shell',
        },
      ],
    ]);
    // the same content again (a poll, a touch): not reported twice
    expect(live.reload()).toMatchObject({ kind: 'refused', again: true });
    expect(refused).toHaveLength(1);
    // another broken content is reported
    writeFileSync(join(dir, 'team-c.yaml'), broken.replace('cobol', 'fortran'));
    expect(live.reload()).toMatchObject({ kind: 'refused', again: false });
    expect(refused).toHaveLength(2);
    // fixed: applied
    writeFileSync(join(dir, 'team-c.yaml'), team('team-c', ['c-api']));
    expect(live.reload().kind).toBe('applied');
    expect(live.get().apps['c-api']?.stack).toBe('shell');
    expect(changes).toHaveLength(2);
  });

  it("follows an editor's write-and-rename of a file, and a ConfigMap's ..data symlink swap", async () => {
    // an editor: the new content is written beside the file, then renamed over it
    const dir = configDir({ 'ferry.yaml': example });
    live = LiveConfig.load(join(dir, 'ferry.yaml'), { debounceMs: 50, pollMs: 0 }).watch();
    writeFileSync(join(dir, '.ferry.yaml.swp'), example.replace('C_CHECKOUT_ALERTS', 'C_CHECKOUT_OPS'));
    renameSync(join(dir, '.ferry.yaml.swp'), join(dir, 'ferry.yaml'));
    await until(
      () => live?.get().apps.checkout?.channels?.alerts === 'C_CHECKOUT_OPS',
      'the renamed-over file applied',
    );
    live.close();

    // a ConfigMap volume: ferry.d/team-a.yaml → ..data/team-a.yaml, ..data → ..2026_1 (then ..2026_2)
    const mount = mkdtempSync(join(tmpdir(), 'ferry-cm-'));
    dirs.push(mount);
    const version = (name: string, files: Record<string, string>) => {
      mkdirSync(join(mount, name));
      for (const [f, text] of Object.entries(files)) writeFileSync(join(mount, name, f), text);
    };
    version('..2026_1', { '00-platform.yaml': example, 'team-a.yaml': team('team-a', ['a-api']) });
    symlinkSync('..2026_1', join(mount, '..data'));
    symlinkSync('..data/00-platform.yaml', join(mount, '00-platform.yaml'));
    symlinkSync('..data/team-a.yaml', join(mount, 'team-a.yaml'));
    live = LiveConfig.load(mount, { debounceMs: 50, pollMs: 0 }).watch();
    expect(live.get().apps['a-new']).toBeUndefined();
    // the kubelet writes the new version, points ..data_tmp at it and renames it over ..data
    version('..2026_2', { '00-platform.yaml': example, 'team-a.yaml': team('team-a', ['a-api', 'a-new']) });
    symlinkSync('..2026_2', join(mount, '..data_tmp'));
    renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
    await until(() => live?.get().apps['a-new'], 'the swapped ConfigMap applied');
  });
});
