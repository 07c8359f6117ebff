// BuildCoordinator scheduling with a controllable build function (the real
// buildah path is covered in build.test.ts).

import { describe, expect, it } from 'vitest';
import type { BuildResult, BuildVariantRequest } from '../../src/build/builder.ts';
import { BuildCoordinator, MemoryBuildRecordStore } from '../../src/build/coordinator.ts';

function req(app: string, version: string, envName: string): BuildVariantRequest {
  return {
    app,
    version,
    envName,
    ref: version,
    repoUrl: '/nowhere',
    tail: {},
    registry: { url: 'http://127.0.0.1:1', insecure: true },
    repository: `apps/${app}`,
    cacheDir: '/tmp/unused',
  };
}

function fakeResult(r: BuildVariantRequest): BuildResult {
  const digest = `sha256:${Buffer.from(`${r.app}/${r.version}/${r.envName}`).toString('hex').padEnd(64, '0').slice(0, 64)}`;
  return {
    image: `127.0.0.1:1/${r.repository}:${r.version}-${r.envName}`,
    tag: `${r.version}-${r.envName}`,
    digest,
    manifest: { schemaVersion: 2, config: { digest, size: 1 }, layers: [] },
    layers: [],
    configDigest: digest,
    logPath: '/dev/null',
    durationMs: 1,
    cached: false,
  };
}

function controllable() {
  const started: string[] = [];
  const waiting = new Map<string, () => void>();
  let running = 0;
  let maxRunning = 0;
  const build = (r: BuildVariantRequest) =>
    new Promise<BuildResult>((resolve) => {
      const key = `${r.app}:${r.version}-${r.envName}`;
      started.push(key);
      running++;
      maxRunning = Math.max(maxRunning, running);
      waiting.set(key, () => {
        running--;
        waiting.delete(key);
        resolve(fakeResult(r));
      });
    });
  return {
    build,
    started,
    finish: (key: string) => waiting.get(key)!(),
    get maxRunning() {
      return maxRunning;
    },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('BuildCoordinator', () => {
  it('collapses concurrent identical requests into one build', async () => {
    const c = controllable();
    const co = new BuildCoordinator({ store: new MemoryBuildRecordStore(), build: c.build });
    const ps = [1, 2, 3].map(() => co.request(req('pay', 'v1', 'prod')));
    await tick();
    expect(c.started).toEqual(['pay:v1-prod']);
    c.finish('pay:v1-prod');
    const rs = await Promise.all(ps);
    expect(new Set(rs.map((r) => r.digest)).size).toBe(1);
    expect(rs.filter((r) => !r.shared)).toHaveLength(1);
    expect(co.buildsStarted).toBe(1);
  });

  it('answers recorded builds from the store', async () => {
    const c = controllable();
    const store = new MemoryBuildRecordStore();
    const co = new BuildCoordinator({ store, build: c.build });
    const p = co.request(req('pay', 'v1', 'prod'));
    await tick();
    c.finish('pay:v1-prod');
    const first = await p;
    const second = await co.request(req('pay', 'v1', 'prod'));
    expect(second.fromRecord).toBe(true);
    expect(second.cached).toBe(true);
    expect(second.digest).toBe(first.digest);
    expect(c.started).toHaveLength(1);
    expect((await store.get('pay', 'v1', 'prod'))?.digest).toBe(first.digest);
  });

  it('runs different apps in parallel up to the limit and one app at a time', async () => {
    const c = controllable();
    const co = new BuildCoordinator({ store: new MemoryBuildRecordStore(), build: c.build, concurrency: 2 });
    const ps = [
      co.request(req('a', 'v1', 'test')),
      co.request(req('a', 'v1', 'prod')),
      co.request(req('b', 'v1', 'test')),
      co.request(req('c', 'v1', 'test')),
    ];
    await tick();
    // a:test and b:test run; a:prod waits for a, c waits for a slot.
    expect(c.started).toEqual(['a:v1-test', 'b:v1-test']);
    expect(co.queued).toBe(2);
    c.finish('a:v1-test');
    await tick();
    // The freed slot goes to a:prod (now allowed), FIFO.
    expect(c.started).toEqual(['a:v1-test', 'b:v1-test', 'a:v1-prod']);
    c.finish('b:v1-test');
    await tick();
    expect(c.started.at(-1)).toBe('c:v1-test');
    c.finish('a:v1-prod');
    c.finish('c:v1-test');
    await Promise.all(ps);
    expect(c.maxRunning).toBe(2);
  });

  it('builds the first environment of a version alone, then the other tails in parallel', async () => {
    const c = controllable();
    const co = new BuildCoordinator({ store: new MemoryBuildRecordStore(), build: c.build, concurrency: 4 });
    const ps = ['test', 'uat', 'prod', 'perf'].map((env) => co.request(req('a', 'v1', env)));
    await tick();
    // the shared layers are built once: nothing else of app a starts before the first is done
    expect(c.started).toEqual(['a:v1-test']);
    c.finish('a:v1-test');
    await tick();
    // now the tails run side by side on the same cache, up to tailsPerApp (3)
    expect(c.started).toEqual(['a:v1-test', 'a:v1-uat', 'a:v1-prod', 'a:v1-perf']);
    expect(co.running).toBe(3);
    // a new version of the same app starts alone again (its shared layers are new)
    const next = co.request(req('a', 'v2', 'test'));
    const later = co.request(req('a', 'v2', 'prod'));
    for (const k of ['a:v1-uat', 'a:v1-prod', 'a:v1-perf']) c.finish(k);
    await tick();
    expect(c.started.slice(4)).toEqual(['a:v2-test']);
    c.finish('a:v2-test');
    await tick();
    expect(c.started.slice(5)).toEqual(['a:v2-prod']);
    c.finish('a:v2-prod');
    await Promise.all([...ps, next, later]);
  });

  it('does not record failed builds and lets a later request retry', async () => {
    let calls = 0;
    const co = new BuildCoordinator({
      store: new MemoryBuildRecordStore(),
      build: async (r) => {
        calls++;
        if (calls === 1) throw new Error('boom');
        return fakeResult(r);
      },
    });
    await expect(co.request(req('x', 'v1', 'prod'))).rejects.toThrow('boom');
    const ok = await co.request(req('x', 'v1', 'prod'));
    expect(ok.cached).toBe(false);
    expect(calls).toBe(2);
    expect(co.running).toBe(0);
  });
});
