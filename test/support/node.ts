// How tests start Ferry's processes: the pinned Node.js (package.json "node", which runs the .ts files
// directly) rather than whatever Node runs vitest.
import type { ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from './redis.ts';

export const REPO_ROOT = join(import.meta.dirname, '..', '..');
const PINNED_NODE = join(REPO_ROOT, 'node_modules', 'node', 'bin', 'node');
export const NODE = existsSync(PINNED_NODE) ? PINNED_NODE : process.execPath;

/** Arguments for NODE: a worker with the recording runners (test/support/recording-worker.ts). */
export function recordingWorkerArgs(configFile: string): string[] {
  return [join(REPO_ROOT, 'test', 'support', 'recording-worker.ts'), '--config', configFile];
}

/**
 * How long a Ferry process may take to say it is up. Starting one is about 3 CPU-seconds of module
 * loading (Node strips the types of Ferry's files and links some 1,300 modules of its dependencies),
 * so with eight test runs sharing two cores, where a process gets a fifteenth of a core, it takes
 * close to a minute (measured: 50 s under a 7 % CPU quota). Tests wait for this apart from the
 * steps they time, so a slow start is not reported as a release that did not move.
 */
export const STARTUP_MS = 120_000;

/**
 * Resolves once the child writes a stderr line matching `ready`; rejects, with everything it wrote,
 * as soon as it exits or fails to spawn, or after `timeoutMs` (then it is killed). The child's stderr
 * must be a pipe; every chunk also goes to `echo`.
 */
export function started(
  child: ChildProcess,
  ready: RegExp,
  echo: (chunk: string) => void = () => {},
  timeoutMs = STARTUP_MS,
): Promise<ChildProcess> {
  const stderr = child.stderr;
  if (!stderr) return Promise.reject(new Error('started(): the child has no stderr pipe'));
  const since = Date.now();
  let output = '';
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      stderr.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
      // Keep echoing what it writes later (warnings, a crash): only the waiting ends here.
      stderr.on('data', (d: Buffer) => echo(d.toString()));
      if (err) reject(err);
      else resolve(child);
    };
    const onData = (d: Buffer) => {
      const text = d.toString();
      echo(text);
      output += text;
      if (output.split('\n').some((line) => ready.test(line))) done();
    };
    const onExit = (code: number | null, signal: string | null) =>
      done(
        new Error(
          `${child.spawnargs.join(' ')} exited (${signal ?? `code ${code}`}) after ${Date.now() - since} ms before it was up; it wrote:\n${output}`,
        ),
      );
    const onError = (err: Error) =>
      done(new Error(`${child.spawnargs.join(' ')} did not start: ${err.message}`));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      done(new Error(`${child.spawnargs.join(' ')} was not up after ${timeoutMs} ms; it wrote:\n${output}`));
    }, timeoutMs);
    stderr.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/**
 * Writes a kubeconfig whose API servers (contexts eu-west and us-east) do not answer: nothing listens
 * on the port. For Ferry processes that must start without a cluster behind them.
 */
export async function writeUnreachableKubeconfig(file: string): Promise<void> {
  const deadPort = await freePort();
  writeFileSync(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: ['eu-west', 'us-east'].map((name) => ({
        name,
        cluster: { server: `https://127.0.0.1:${deadPort}`, 'insecure-skip-tls-verify': true },
      })),
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: ['eu-west', 'us-east'].map((name) => ({ name, context: { cluster: name, user: 'u' } })),
      'current-context': 'eu-west',
    }),
  );
}
