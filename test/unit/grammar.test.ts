import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Command, formatCommand, parseCommand } from '../../commands/index.ts';
import { SUBCOMMANDS } from '../../src/domain/words.ts';
import { exampleConfig } from '../support/config.ts';

const config = exampleConfig();
const ctx = { config };
const apps = Object.keys(config.apps);
const envs = Object.keys(config.environments);
const regions = Object.keys(config.regions);
const factors = Object.keys(config.factors);

const parse = (text: string) => parseCommand(text, ctx);
function expectError(text: string) {
  const r = parse(text);
  if (r.ok) throw new Error(`expected an error for ${text}, got ${JSON.stringify(r.command)}`);
  return r.error;
}

describe('the command grammar on examples a person would type', () => {
  it('reads the design example as app, version and factor, to the default environment', () => {
    expect(parse('/release payments v2 degraded')).toEqual({
      ok: true,
      command: { kind: 'release', app: 'payments', version: 'v2', regions: [], factors: ['degraded'] },
    });
  });

  it('reads environment, regions and several factors in any order after the version', () => {
    const r = parse('/release checkout 1.4.0 canary in us-east, eu-west to prod no-prewarm');
    expect(r).toEqual({
      ok: true,
      command: {
        kind: 'release',
        app: 'checkout',
        version: '1.4.0',
        environment: 'prod',
        regions: ['us-east', 'eu-west'],
        factors: ['canary', 'no-prewarm'],
      },
    });
  });

  it('suggests the closest app for a typo', () => {
    const e = expectError('/release paymnts v2');
    expect(e.code).toBe('unknown-app');
    expect(e.suggestions).toEqual(['payments']);
    expect(e.message).toContain('Did you mean "payments"?');
  });

  it('lists the known factors for an unknown one', () => {
    const e = expectError('/release payments v2 yolo');
    expect(e.code).toBe('unknown-factor');
    for (const f of factors) expect(e.message).toContain(f);
  });

  it('shows the usage line when the version is missing', () => {
    const e = expectError('/release payments');
    expect(e.message).toContain('Which version of payments?');
    // The usage line is literal text in a message: its <app> is escaped, not read as a Slack link.
    expect(e.message).toContain('Usage: /release &lt;app&gt; &lt;version&gt;');
  });

  it('refuses a subcommand word as an app name and says why', () => {
    const e = expectError('/release history');
    expect(e.message).toContain('Which app?');
    const e2 = expectError('/release sync v2');
    expect(e2.code).toBe('unknown-app');
    const e3 = expectError('/release status status');
    expect(e3.code).toBe('reserved-word');
    expect(e3.message).toContain('reserved word');
  });

  it('points out an environment or region written as a factor', () => {
    expect(expectError('/release payments v2 prod').message).toContain('write "to prod"');
    expect(expectError('/release payments v2 eu-west').message).toContain('write "in eu-west"');
  });

  it('reads every other command', () => {
    expect(parse('status')).toEqual({ ok: true, command: { kind: 'status' } });
    expect(parse('status r12')).toEqual({ ok: true, command: { kind: 'status', releaseId: 'r12' } });
    expect(parse('history payments to prod')).toEqual({
      ok: true,
      command: { kind: 'history', app: 'payments', environment: 'prod' },
    });
    expect(parse('rollback payments to prod version v1')).toEqual({
      ok: true,
      command: { kind: 'rollback', app: 'payments', environment: 'prod', version: 'v1' },
    });
    expect(parse('logs payments in us-east file gc lines 50 since 10m grep OutOfMemory error')).toEqual({
      ok: true,
      command: {
        kind: 'logs',
        app: 'payments',
        region: 'us-east',
        file: 'gc',
        lines: 50,
        since: '10m',
        grep: 'OutOfMemory error',
      },
    });
    expect(parse('reject r7 needs the migration first')).toEqual({
      ok: true,
      command: { kind: 'reject', releaseId: 'r7', reason: 'needs the migration first' },
    });
    expect(parse('sync payments v2 in us-east')).toEqual({
      ok: true,
      command: { kind: 'sync', app: 'payments', version: 'v2', regions: ['us-east'] },
    });
    expect(parse('help factors')).toEqual({ ok: true, command: { kind: 'help', topic: 'factors' } });
  });

  it('asks for a reason on reject, and for valid numbers and durations on logs', () => {
    expect(expectError('reject r7').message).toContain('Say why r7 is rejected');
    expect(expectError('logs payments lines lots').message).toContain('"lines" takes a whole number');
    expect(expectError('logs payments since yesterday').message).toContain('"since" takes a duration');
    expect(expectError('logs payments file heapdump').message).toContain('Files: stdout, app, gc');
    expect(expectError('approve 42').code).toBe('bad-release-id');
  });

  it('catches a subcommand typo', () => {
    const e = expectError('/release stauts');
    expect(e.code).toBe('unknown-command');
    expect(e.message).toContain('"status"');
  });
});

// ---- properties ----------------------------------------------------------

// Only pod names (DNS-1123 subdomains) are valid pods.
const podName = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?(\.[a-z0-9]{1,8})?$/);
const version = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,10}$/);
const releaseId = fc.nat(9999).map((n) => `r${n}`);
const sub = <T>(arr: T[]) => fc.subarray(arr, { minLength: 0 });
const reason = fc
  .array(fc.stringMatching(/^[A-Za-z0-9.,!?-]{1,8}$/), { minLength: 1, maxLength: 5 })
  .map((w) => w.join(' '));
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

function clean<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const validCommand: fc.Arbitrary<Command> = fc.oneof(
  fc
    .record({
      kind: fc.constantFrom('release' as const, 'plan' as const),
      app: fc.constantFrom(...apps),
      version,
      environment: opt(fc.constantFrom(...envs)),
      regions: sub(regions),
      factors: sub(factors),
    })
    .map(clean),
  fc.record({ kind: fc.constant('status' as const), app: opt(fc.constantFrom(...apps)) }).map(clean),
  fc.record({ kind: fc.constant('status' as const), releaseId }),
  fc
    .record({
      kind: fc.constant('history' as const),
      app: fc.constantFrom(...apps),
      environment: opt(fc.constantFrom(...envs)),
    })
    .map(clean),
  fc
    .record({
      kind: fc.constant('rollback' as const),
      app: fc.constantFrom(...apps),
      environment: opt(fc.constantFrom(...envs)),
      version: opt(version),
    })
    .map(clean),
  fc
    .record({
      kind: fc.constant('logs' as const),
      app: fc.constantFrom(...apps),
      environment: opt(fc.constantFrom(...envs)),
      region: opt(fc.constantFrom(...regions)),
      pod: opt(podName),
      file: opt(fc.constantFrom('stdout', 'app', 'gc')),
      lines: opt(fc.integer({ min: 1, max: 5000 })),
      since: opt(fc.constantFrom('30s', '15m', '2h')),
      grep: opt(reason),
    })
    .map(clean),
  fc.record({ kind: fc.constant('approve' as const), releaseId, reason: opt(reason) }).map(clean),
  fc.record({ kind: fc.constant('reject' as const), releaseId, reason }),
  fc.record({ kind: fc.constantFrom('pause' as const, 'resume' as const, 'abort' as const), releaseId }),
  fc.record({
    kind: fc.constant('sync' as const),
    app: fc.constantFrom(...apps),
    version,
    regions: sub(regions),
  }),
  fc.record({ kind: fc.constant('versions' as const), app: fc.constantFrom(...apps) }),
  fc
    .record({
      kind: fc.constant('rebuild' as const),
      stack: fc.constantFrom(...Object.keys(config.stacks)),
      environment: opt(fc.constantFrom(...envs)),
      dryRun: fc.boolean(),
    })
    .map(clean),
  fc
    .record({ kind: fc.constant('help' as const), topic: opt(fc.constantFrom('release', 'factors', 'logs')) })
    .map(clean),
) as fc.Arbitrary<Command>;

describe('grammar properties', () => {
  it('never throws, and every error has a message, on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (text) => {
        const r = parse(text);
        if (!r.ok) expect(r.error.message.length).toBeGreaterThan(10);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on near-miss commands built from real words', () => {
    const vocabulary = [
      ...SUBCOMMANDS,
      ...apps,
      ...envs,
      ...regions,
      ...factors,
      'to',
      'in',
      'v2',
      'r1',
      'lines',
      '0',
      ',',
      '""',
    ];
    const mutate = fc
      .tuple(fc.constantFrom(...vocabulary), fc.nat(3))
      .map(([w, n]) => (n === 0 ? w : n === 1 ? w.slice(1) : n === 2 ? `${w}x` : w.toUpperCase()));
    fc.assert(
      fc.property(fc.array(mutate, { maxLength: 8 }), (words) => {
        const r = parse(words.join(' '));
        if (!r.ok) expect(r.error.message).toMatch(/\S/);
      }),
      { numRuns: 2000 },
    );
  });

  it('parses every valid command back to the same meaning', () => {
    fc.assert(
      fc.property(validCommand, (command) => {
        const text = formatCommand(command);
        const r = parse(text);
        expect(r).toEqual({ ok: true, command });
      }),
      { numRuns: 2000 },
    );
  });

  it('suggests the app for any one-letter typo of a known app', () => {
    fc.assert(
      fc.property(fc.constantFrom(...apps), fc.nat(), (app, n) => {
        const i = n % app.length;
        const typo = app.slice(0, i) + app.slice(i + 1);
        const r = parse(`/release ${typo} v2`);
        if (typo in config.apps) return;
        expect(r.ok).toBe(false);
        if (!r.ok) expect(r.error.suggestions).toContain(app);
      }),
    );
  });
});

describe('/release adopt', () => {
  it('is a dry run unless "confirm" follows', () => {
    expect(parse('/release adopt payments to prod')).toEqual({
      ok: true,
      command: { kind: 'adopt', app: 'payments', environment: 'prod', confirm: false },
    });
    expect(parse('/release adopt payments confirm')).toEqual({
      ok: true,
      command: { kind: 'adopt', app: 'payments', confirm: true },
    });
    expect(formatCommand({ kind: 'adopt', app: 'ledger', environment: 'test', confirm: true })).toBe(
      '/release adopt ledger to test confirm',
    );
  });

  it('says what is wrong with a bad adopt, and what would be right', () => {
    expect(expectError('/release adopt payments to prod now').message).toContain('only "confirm" may follow');
    expect(expectError('/release adopt payments confirm confirm').message).toContain(
      'only "confirm" may follow',
    );
    expect(expectError('/release adopt paymnts').message).toContain('Did you mean "payments"');
    expect(expectError('/release adopt payments to staging').usage).toBe(
      '/release adopt <app> [to <env>] [confirm]',
    );
  });
});
