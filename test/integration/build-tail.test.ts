// composeDockerfile is pure; these tests need no buildah or registry.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { composeDockerfile, finalStageUser, TailSpecError } from '../../src/build/tail.ts';

const APP = 'FROM registry.local/stacks/jdk:21\nWORKDIR /app\nCOPY . /app\nRUN make\nCMD ["/app/run"]';

describe('composeDockerfile', () => {
  it('appends the tail after the app Dockerfile, byte for byte', () => {
    const c = composeDockerfile(
      APP,
      {
        packages: ['testtools', 'curl', 'testtools'],
        files: [{ path: '/etc/app/env.conf', content: 'x=1\n', mode: 0o600 }],
        env: { Z_LAST: 'z', A_FIRST: 'say "hi" \\o/' },
        run: ['pytest-lite --version'],
        instructions: ['EXPOSE 8080'],
      },
      { envName: 'test', labels: { 'io.ferry.version': 'v2' } },
    );
    expect(c.dockerfile.startsWith(APP + '\n')).toBe(true);
    expect(c.prefix).toBe(APP + '\n');
    expect(c.tail).toBe(
      [
        '# ---- ferry dependency-injection tail (environment test) ----',
        'COPY --from=ferry-tail packages/curl/ /',
        'COPY --from=ferry-tail packages/testtools/ /',
        'COPY --from=ferry-tail --chmod=0600 files/0/content /etc/app/env.conf',
        'ENV A_FIRST="say \\"hi\\" \\\\o/" Z_LAST="z"',
        'RUN pytest-lite --version',
        'EXPOSE 8080',
        'LABEL io.ferry.environment="test" io.ferry.version="v2"',
        '',
      ].join('\n'),
    );
    expect(c.tailLayerCount).toBe(4);
    expect(c.contextEntries).toEqual([
      { kind: 'package', name: 'curl', dest: 'packages/curl' },
      { kind: 'package', name: 'testtools', dest: 'packages/testtools' },
      { kind: 'file', dest: 'files/0/content', content: 'x=1\n', mode: 0o600 },
    ]);
  });

  it('an empty tail adds only the header and the label (no layer)', () => {
    const c = composeDockerfile(APP + '\n', {}, { envName: 'prod' });
    expect(c.prefix).toBe(APP + '\n');
    expect(c.tailLayerCount).toBe(0);
    expect(c.tail.split('\n').filter((l) => l && !l.startsWith('#'))).toEqual([
      'LABEL io.ferry.environment="prod"',
    ]);
  });

  it('keeps the prefix identical for any two environments (property)', () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
    const tail = fc.record(
      {
        packages: fc.array(name, { maxLength: 4 }),
        env: fc.dictionary(fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,8}$/), fc.stringMatching(/^[ -~]{0,12}$/), {
          maxKeys: 3,
        }),
        run: fc.array(fc.stringMatching(/^[a-z][ -~]{0,20}$/), { maxLength: 3 }),
        files: fc.uniqueArray(
          fc.record({ path: fc.stringMatching(/^\/[a-z]{1,5}\/[a-z]{1,5}$/), content: fc.string() }),
          { maxLength: 3, selector: (f) => f.path },
        ),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.string(), tail, tail, name, name, (extra, t1, t2, e1, e2) => {
        const app = `FROM base\n${extra.replace(/\r/g, '')}`;
        const a = composeDockerfile(app, t1, { envName: e1 });
        const b = composeDockerfile(app, t2, { envName: e2 });
        expect(a.prefix).toBe(b.prefix);
        expect(a.dockerfile.startsWith(a.prefix)).toBe(true);
        expect(b.dockerfile.startsWith(b.prefix)).toBe(true);
        // Deterministic.
        expect(composeDockerfile(app, t1, { envName: e1 }).dockerfile).toBe(a.dockerfile);
      }),
      { numRuns: 200 },
    );
  });

  it('switches to root for RUN when the app runs as another user, and back', () => {
    const app =
      'FROM base AS build\nUSER builder\nRUN make\nFROM base\nUSER app\nCOPY --from=build /out /app\n';
    expect(finalStageUser(app)).toBe('app');
    const c = composeDockerfile(app, { run: ['touch /x'] }, { envName: 'test' });
    expect(c.tail).toContain('USER root\nRUN touch /x\nUSER app\n');
    // Packages need no user switch; the first stage's USER is not the final one.
    expect(finalStageUser('FROM a\nUSER x\nFROM b\n')).toBeUndefined();
    expect(composeDockerfile('FROM b\n', { run: ['true'] }, { envName: 'e' }).tail).not.toContain('USER');
  });

  it('rejects specs that would break the image or the Dockerfile', () => {
    const bad: [string, Parameters<typeof composeDockerfile>[1]][] = [
      ['package name', { packages: ['../etc'] }],
      ['relative path', { files: [{ path: 'etc/x', content: '' }] }],
      ['dotdot path', { files: [{ path: '/etc/../x', content: '' }] }],
      [
        'duplicate file',
        {
          files: [
            { path: '/a', content: '' },
            { path: '//a', content: '' },
          ],
        },
      ],
      ['mode', { files: [{ path: '/a', content: '', mode: 0o17777 }] }],
      ['env key', { env: { 'BAD-KEY': 'x' } }],
      ['env newline', { env: { K: 'a\nRUN rm -rf /' } }],
      ['run newline', { run: ['echo a\nFROM evil'] }],
      ['FROM in tail', { instructions: ['FROM scratch'] }],
      ['not an instruction', { instructions: ['  '] }],
    ];
    for (const [what, spec] of bad) {
      expect(() => composeDockerfile(APP, spec, { envName: 'x' }), what).toThrow(TailSpecError);
    }
    expect(() => composeDockerfile('# no from\n', {}, { envName: 'x' })).toThrow(TailSpecError);
  });
});
