// The stack rebuild command's grammar and errors, and the choice of which
// deployed images are on an outdated stack digest.
import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../commands/index.ts';
import { planStackRebuild, rebuildVersion } from '../../src/domain/stacks.ts';
import type { VersionRecord } from '../../src/domain/version.ts';
import { exampleConfig } from '../support/config.ts';

const ctx = { config: exampleConfig() };
const parse = (text: string) => parseCommand(text, ctx);
function error(text: string) {
  const r = parse(text);
  if (r.ok) throw new Error(`expected an error for ${text}, got ${JSON.stringify(r.command)}`);
  return r.error;
}

const S1 = `sha256:${'1'.repeat(64)}`;
const S2 = `sha256:${'2a'.repeat(32)}`;

describe('/release rebuild stack', () => {
  it('reads the stack, the environment and the dry run in any order after the stack', () => {
    expect(parse('/release rebuild stack shell')).toEqual({
      ok: true,
      command: { kind: 'rebuild', stack: 'shell', dryRun: false },
    });
    expect(parse('/release rebuild stack shell plan to test')).toEqual({
      ok: true,
      command: { kind: 'rebuild', stack: 'shell', environment: 'test', dryRun: true },
    });
    expect(parse('/release REBUILD Stack Shell to prod')).toEqual({
      ok: true,
      command: { kind: 'rebuild', stack: 'shell', environment: 'prod', dryRun: false },
    });
  });

  it('says what is missing or wrong, with the usage line', () => {
    expect(error('/release rebuild').message).toMatch(/Rebuild what\? Name a stack: shell\./);
    expect(error('/release rebuild shell').message).toContain('Write `/release rebuild stack shell`');
    expect(error('/release rebuild payments').message).toContain('Only stacks can be rebuilt');
    expect(error('/release rebuild stack').message).toContain('Which stack? Stacks: shell.');
    const typo = error('/release rebuild stack shel');
    expect(typo.code).toBe('bad-value');
    expect(typo.suggestions).toEqual(['shell']);
    expect(typo.message).toContain('Did you mean "shell"?');
    expect(error('/release rebuild stack shell to').code).toBe('usage');
    expect(error('/release rebuild stack shell to prdo').code).toBe('unknown-environment');
    expect(error('/release rebuild stack shell prod').message).toContain('write "to prod"');
    expect(error('/release rebuild stack shell to test to prod').message).toContain('"to" is given twice');
    expect(error('/release rebuild stack shell now').message).toContain(`I don't understand "now"`);
    for (const e of [error('/release rebuild'), error('/release rebuild stack shell now')])
      expect(e.message).toContain('Usage: /release rebuild stack &lt;stack&gt; [to &lt;env&gt;] [plan]');
  });

  it('reserves "rebuild" and "stack": neither can be read as an app', () => {
    expect(error('/release rebuild v2').code).toBe('usage');
    expect(error('/release plan stack v2').code).toBe('reserved-word');
    expect(error('/release plan rebuild v2').code).toBe('reserved-word');
  });
});

describe('rebuilt version names', () => {
  it('adds the stack digest, replaces an earlier one, and refuses a name that grows too long', () => {
    expect(rebuildVersion('v2', S2)).toBe('v2-stack.2a2a2a2a2a2a');
    expect(rebuildVersion('v2-stack.111111111111', S2)).toBe('v2-stack.2a2a2a2a2a2a');
    expect(rebuildVersion('x'.repeat(50), S2)).toBeUndefined();
  });
});

describe('choosing what a stack rebuild releases', () => {
  const record = (version: string, env: string, stack?: { name: string; digest: string }): VersionRecord => ({
    app: 'a',
    version,
    ref: version,
    commit: 'c'.repeat(40),
    images: {
      [env]: { image: `r/apps/a:${version}-${env}`, digest: S1, builtAt: 1, ...(stack ? { stack } : {}) },
    },
    passed: {},
  });
  const stackName = '127.0.0.1:5000/ferry/stack-shell';

  it('lists exactly the images on another digest of the stack, and those with none recorded', () => {
    const plan = planStackRebuild({
      stack: 'shell',
      stackImage: `${stackName}:1`,
      digest: S2,
      deployed: [
        {
          app: 'old',
          environment: 'test',
          version: 'v2',
          record: record('v2', 'test', { name: stackName, digest: S1 }),
        },
        {
          app: 'new',
          environment: 'test',
          version: 'v3',
          record: record('v3', 'test', { name: stackName, digest: S2 }),
        },
        { app: 'unknown', environment: 'test', version: 'v1', record: record('v1', 'test') },
        {
          app: 'other',
          environment: 'test',
          version: 'v1',
          record: record('v1', 'test', { name: 'docker.io/library/debian', digest: S1 }),
        },
        { app: 'gone', environment: 'test', version: 'v9' },
      ],
    });
    expect(plan.outdated.map((i) => [i.app, i.version, i.newVersion, i.stackDigest])).toEqual([
      ['old', 'v2', 'v2-stack.2a2a2a2a2a2a', S1],
      ['unknown', 'v1', 'v1-stack.2a2a2a2a2a2a', undefined],
    ]);
    expect(plan.outdated[0]?.commit).toBe('c'.repeat(40));
    expect(plan.current.map((d) => d.app)).toEqual(['new']);
    expect(plan.skipped.map((s) => [s.app, s.reason])).toEqual([
      ['other', 'built FROM docker.io/library/debian, not the stack image'],
      ['gone', 'no build record of v9 for test'],
    ]);
  });
});
