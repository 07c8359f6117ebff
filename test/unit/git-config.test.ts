// Git settings in ferry.yaml: validated with line numbers, and turned into
// what the builder gets (the app's own settings, else its repository host's).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GitFetchError, repoLocation } from '../../src/build/git.ts';
import { appRepo, repoAddress } from '../../src/build/repo-config.ts';
import { parseConfig } from '../../src/config/load.ts';
import { isTransient } from '../../src/domain/errors.ts';
import { EXAMPLE_CONFIG_PATH } from '../support/config.ts';

const example = readFileSync(EXAMPLE_CONFIG_PATH, 'utf8');
/** The cache placeholder of config paths (spelled out so it is not read as a template). */
const CACHE = '$' + '{FERRY_CACHE}';

function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  if (i < 0) throw new Error(`no line with ${needle}`);
  return i + 1;
}

/** The example config with the payments app's repo and git settings replaced, plus optional gitHosts. */
function withPayments(repoAndGit: string, gitHosts = ''): string {
  const text = example.replace(
    `    repo: ${CACHE}/repos/hello-app\n    stack: shell\n    owners: [payments-devs]\n    channels: { releases: C_RELEASES, alerts: C_PAY_ALERTS }\n    defaultEnvironment: prod\n    namespace: payments`,
    `${repoAndGit}\n    stack: shell\n    owners: [payments-devs]\n    channels: { releases: C_RELEASES, alerts: C_PAY_ALERTS }\n    defaultEnvironment: prod\n    namespace: payments`,
  );
  expect(text).toContain(repoAndGit);
  return gitHosts ? `${text}\ngitHosts:\n${gitHosts}\n` : text;
}

describe('git settings in the config', () => {
  it('a token in both a variable and a file is refused at the line of the file', () => {
    const text = withPayments(
      [
        '    repo: https://git.example.com/payments.git',
        '    git:',
        '      tokenEnv: PAYMENTS_GIT_TOKEN',
        '      tokenFile: /etc/ferry/payments.token',
      ].join('\n'),
    );
    const r = parseConfig(text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toEqual([
      {
        file: 'ferry.yaml',
        line: lineOf(text, 'tokenFile: /etc/ferry'),
        path: 'apps.payments.git.tokenFile',
        message: 'set either tokenEnv or tokenFile, not both',
      },
    ]);
  });

  it('a password in the repository address is refused without repeating it', () => {
    const text = withPayments('    repo: https://ferry:hunter2-secret@git.example.com/payments.git');
    const r = parseConfig(text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]!.path).toBe('apps.payments.repo');
    expect(r.problems[0]!.line).toBe(lineOf(text, 'hunter2'));
    expect(r.problems[0]!.message).toMatch(/holds a password/);
    expect(r.problems[0]!.message).not.toContain('hunter2');
  });

  it('a variable name that is not one, and an unknown key, are named', () => {
    const text = withPayments(
      [
        '    repo: git@git.example.com:team/payments.git',
        '    git:',
        '      tokenEnv: $TOKEN',
        '      password: x',
      ].join('\n'),
    );
    const r = parseConfig(text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map((p) => [p.path, p.line])).toEqual(
      expect.arrayContaining([
        ['apps.payments.git.tokenEnv', lineOf(text, 'tokenEnv: $TOKEN')],
        ['apps.payments.git.password', lineOf(text, 'password: x')],
      ]),
    );
  });

  it('an app takes its own git settings, else its host:port entry, else its host name entry', () => {
    const hosts = [
      '  "git.example.com:8443":',
      '    username: ferry',
      '    tokenEnv: EXAMPLE_8443_TOKEN',
      `    caFile: ${CACHE}/ca.pem`,
      '    timeout: 30s',
      '  git.example.com:',
      '    sshKeyFile: ~/keys/deploy',
      '    knownHostsFile: /etc/ferry/known_hosts',
    ].join('\n');
    const on8443 = parseConfig(withPayments('    repo: https://git.example.com:8443/payments.git', hosts));
    expect(on8443.ok).toBe(true);
    if (!on8443.ok) return;
    const a = appRepo(on8443.config, 'payments');
    expect(a.repoUrl).toBe('https://git.example.com:8443/payments.git');
    expect(a.git).toMatchObject({ username: 'ferry', tokenEnv: 'EXAMPLE_8443_TOKEN', timeoutSeconds: 30 });
    expect(a.git?.caFile).toMatch(/^\/.*\/ca\.pem$/);
    expect(a.git?.caFile).not.toContain('FERRY_CACHE');

    const scp = parseConfig(withPayments('    repo: git@git.example.com:team/payments.git', hosts));
    expect(scp.ok).toBe(true);
    if (!scp.ok) return;
    const b = appRepo(scp.config, 'payments');
    expect(b.repoUrl).toBe('git@git.example.com:team/payments.git');
    expect(b.git).toEqual({
      sshKeyFile: expect.stringMatching(/^\/.+\/keys\/deploy$/),
      knownHostsFile: '/etc/ferry/known_hosts',
    });

    const own = parseConfig(
      withPayments(
        [
          '    repo: ssh://git@git.example.com/team/payments.git',
          '    git:',
          '      sshKeyFile: /etc/ferry/payments.key',
        ].join('\n'),
        hosts,
      ),
    );
    expect(own.ok).toBe(true);
    if (!own.ok) return;
    expect(appRepo(own.config, 'payments').git).toEqual({ sshKeyFile: '/etc/ferry/payments.key' });

    // A local repository has no host and takes no host settings.
    const local = parseConfig(withPayments(`    repo: ${CACHE}/repos/hello-app`, hosts));
    expect(local.ok).toBe(true);
    if (!local.ok) return;
    const c = appRepo(local.config, 'payments');
    expect(c.repoUrl).toMatch(/^\/.*\/repos\/hello-app$/);
    expect(c.git).toBeUndefined();
  });

  it('repository addresses: paths become absolute, URLs and scp-like addresses stay as written', () => {
    expect(repoAddress('https://h/x.git')).toBe('https://h/x.git');
    expect(repoAddress('git@h:x.git')).toBe('git@h:x.git');
    expect(repoAddress('/srv/x')).toBe('/srv/x');
    expect(repoAddress('relative/dir')).toMatch(/^\/.+\/relative\/dir$/);
    expect(repoLocation('git@h.example:team/x.git')).toMatchObject({ scheme: 'ssh', host: 'h.example' });
    expect(repoLocation('ssh://git@h.example:2222/x.git')).toMatchObject({
      scheme: 'ssh',
      host: 'h.example:2222',
    });
    expect(repoLocation('/srv/x')).toMatchObject({ scheme: 'file', url: 'file:///srv/x' });
    const err = (() => {
      try {
        repoLocation('https://u:s3cr3t@h.example/x.git');
      } catch (e) {
        return e;
      }
    })() as GitFetchError;
    expect(err).toBeInstanceOf(GitFetchError);
    expect(err.message).not.toContain('s3cr3t');
  });
});

describe('git failures and retries', () => {
  it('an unreachable server or a timeout is retried by the worker; a refusal is final', () => {
    const wrap = (kind: ConstructorParameters<typeof GitFetchError>[0]) =>
      new Error('build failed', { cause: new GitFetchError(kind, 'x') });
    expect(isTransient(wrap('unreachable'))).toBe(true);
    expect(isTransient(wrap('timeout'))).toBe(true);
    for (const kind of ['auth', 'host-key-unknown', 'key-refused', 'tls', 'unknown-ref'] as const) {
      expect(isTransient(wrap(kind))).toBe(false);
    }
  });
});
