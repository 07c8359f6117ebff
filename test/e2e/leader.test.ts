// Leader election of the watcher's replicas on a coordination.k8s.io/v1 Lease
// of the real eu-west API server (src/watch/leader.ts), with each candidate in
// its own process (test/support/leader-child.ts) so the leader can die by
// SIGKILL: exactly one leads; the standby takes over within 15 s of the
// leader's death and within ~3 s of its graceful stop (the Lease released);
// and at no moment do two candidates believe they lead (sampled every 200 ms).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureInfra,
  kubectlJson,
  newNamespace,
  REPO_ROOT,
  type TestNamespace,
  waitFor,
} from '../support/infra.ts';

const CONTEXT = 'eu-west';
const LEASE = 'leader-test';
// The child runs the .ts sources directly: Node.js 24's type stripping (the pinned binary).
const PINNED_NODE = join(REPO_ROOT, 'node_modules', 'node', 'bin', 'node');
const NODE = existsSync(PINNED_NODE) ? PINNED_NODE : process.execPath;

interface Candidate {
  identity: string;
  child: ChildProcess;
  role: 'leader' | 'standby' | 'stopped';
  alive: boolean;
  /** Holders it saw, one per round of its election loop. */
  observed: string[];
}

let ns: TestNamespace;
const candidates: Candidate[] = [];
const output: string[] = [];
let sampler: NodeJS.Timeout | undefined;
const samples: { at: number; leaders: string[] }[] = [];

function candidate(identity: string): Candidate {
  const child = spawn(
    NODE,
    [join(REPO_ROOT, 'test', 'support', 'leader-child.ts'), CONTEXT, ns.name, LEASE, identity],
    {
      env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const c: Candidate = { identity, child, role: 'standby', alive: true, observed: [] };
  let buffered = '';
  child.stdout?.on('data', (d: Buffer) => {
    buffered += d.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes('"observed"')) output.push(`${identity}: ${line}`);
      try {
        const msg = JSON.parse(line) as { role?: Candidate['role']; identity?: string; observed?: string };
        if (msg.identity !== identity) continue;
        if (msg.role) c.role = msg.role;
        if (msg.observed !== undefined) c.observed.push(msg.observed);
      } catch {
        // a log line that is not JSON
      }
    }
  });
  child.stderr?.on('data', (d: Buffer) => output.push(`${identity} (stderr): ${d.toString()}`));
  child.on('exit', () => {
    c.alive = false;
  });
  candidates.push(c);
  return c;
}

const leaders = () => candidates.filter((c) => c.alive && c.role === 'leader');

async function leaseHolder(): Promise<{ holder: string; transitions: number }> {
  const lease = await kubectlJson<{ spec: { holderIdentity?: string; leaseTransitions?: number } }>(CONTEXT, [
    '-n',
    ns.name,
    'get',
    'lease',
    LEASE,
  ]);
  return { holder: lease.spec.holderIdentity ?? '', transitions: lease.spec.leaseTransitions ?? 0 };
}

/** No sample so far saw two candidates that both believed they lead. */
function expectNeverTwoLeaders(): void {
  expect(
    samples.filter((s) => s.leaders.length > 1),
    `samples with two leaders${why()}`,
  ).toEqual([]);
}

function why(): string {
  return `\n--- candidates' output ---\n${output.slice(-80).join('\n')}`;
}

beforeAll(async () => {
  await ensureInfra(['k8s']);
  ns = await newNamespace(CONTEXT, 'leader');
  // Sample what every live candidate believes, all through the test.
  sampler = setInterval(() => {
    samples.push({ at: Date.now(), leaders: leaders().map((c) => c.identity) });
  }, 200);
}, 600_000);

afterAll(async () => {
  clearInterval(sampler);
  for (const c of candidates) if (c.alive) c.child.kill('SIGKILL');
  await ns?.remove();
});

describe('watcher leader election on a Lease', () => {
  it('one leads; SIGKILL of the leader: the standby leads within 15 s; graceful stop: within ~3 s; never two at once', async () => {
    const a = candidate('watcher-a');
    const b = candidate('watcher-b');

    // Exactly one leads, and the Lease names it.
    const first = await waitFor(() => (leaders().length > 0 ? leaders()[0] : undefined), {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: `a leader${why()}`,
    });
    const standby = first === a ? b : a;
    expect((await leaseHolder()).holder).toBe(first.identity);
    // The standby tries again and again, sees the Lease held, and stands by.
    const seenBefore = standby.observed.length;
    await waitFor(() => standby.observed.length >= seenBefore + 3, {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: '3 rounds of the standby',
    });
    expect(standby.observed.slice(seenBefore, seenBefore + 3), why()).toEqual(Array(3).fill(first.identity));
    expectNeverTwoLeaders();
    expect(standby.role).toBe('standby');
    expect(leaders().map((c) => c.identity)).toEqual([first.identity]);

    // The leader dies without a word: the Lease stays held until it expires.
    const killedAt = Date.now();
    first.child.kill('SIGKILL');
    await waitFor(() => !first.alive, { timeoutMs: 10_000, intervalMs: 50 });
    await waitFor(() => standby.role === 'leader', {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: `the standby to take over${why()}`,
    });
    const takeoverMs = Date.now() - killedAt;
    expect(takeoverMs, why()).toBeLessThan(15_000);
    const afterKill = await leaseHolder();
    expect(afterKill.holder).toBe(standby.identity);
    expect(afterKill.transitions).toBe(1);

    // A new replica (the restarted pod) stands by behind the new leader...
    const c = candidate('watcher-c');
    await waitFor(() => c.observed.length >= 3, {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: '3 rounds of the new replica',
    });
    expect(c.observed.slice(0, 3), why()).toEqual(Array(3).fill(standby.identity));
    expect(c.role, why()).toBe('standby');

    // ...and takes over at once when the leader stops gracefully (releases the Lease).
    const stoppedAt = Date.now();
    standby.child.kill('SIGTERM');
    await waitFor(() => c.role === 'leader', {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: `the new replica to take over after a graceful stop${why()}`,
    });
    const handoverMs = Date.now() - stoppedAt;
    await waitFor(() => !standby.alive, { timeoutMs: 10_000, intervalMs: 50 });
    expect(standby.role).toBe('stopped');
    expect(handoverMs, why()).toBeLessThan(4_000);
    expect((await leaseHolder()).holder).toBe(c.identity);

    // Never two leaders at once, over the whole run.
    expect(samples.length).toBeGreaterThan(50);
    expectNeverTwoLeaders();
    console.log(
      `leader election: takeover after SIGKILL ${takeoverMs} ms, after graceful stop ${handoverMs} ms, ${samples.length} samples`,
    );
  });
});
