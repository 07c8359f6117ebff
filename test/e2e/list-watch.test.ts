// Ferry's list-and-watch (src/kube/list-watch.ts) against the real eu-west API server: it follows
// changes, re-lists on its timer, re-lists when the API server answers a watch with 410 Gone, and
// gets past a watch that stays connected but delivers nothing (client-node #364, #596, #958).
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClients } from '../../src/kube/client.ts';
import { ListWatch } from '../../src/kube/list-watch.ts';
import { kubeRunners } from '../../src/runners/deploy.ts';
import { ensureInfra, kubectl, newNamespace, type TestNamespace } from '../support/infra.ts';
import { kubeTestConfig } from '../support/kube.ts';

const namespaces: TestNamespace[] = [];
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  await ensureInfra(['k8s']);
}, 1_800_000);

afterAll(async () => {
  for (const c of cleanups) await Promise.resolve(c()).catch(() => {});
  for (const ns of namespaces) await ns.remove().catch(() => {});
});

async function cluster(prefix: string): Promise<{ ns: string; k: KubeClients }> {
  const ns = await newNamespace('eu-west', prefix);
  namespaces.push(ns);
  return { ns: ns.name, k: kubeRunners(kubeTestConfig(ns.name)).clients('eu-west') };
}

async function until(what: string, fn: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const names = (lw: ListWatch<V1ConfigMap>) => [...lw.items.values()].map((c) => c.metadata?.name);

function configMaps(k: KubeClients, ns: string, o: Partial<ConstructorParameters<typeof ListWatch>[0]> = {}) {
  const seen: string[] = [];
  const lw = new ListWatch<V1ConfigMap>({
    name: `eu-west/configmaps/${ns}`,
    kc: k.kc,
    path: `/api/v1/namespaces/${ns}/configmaps`,
    list: () => k.core.listNamespacedConfigMap({ namespace: ns }),
    onObject: (type, c) => {
      seen.push(`${type}:${c.metadata?.name}`);
    },
    maxBackoffMs: 500,
    ...o,
  });
  cleanups.push(() => lw.stop());
  return { lw, seen };
}

/**
 * A TCP proxy to the API server that can go quiet: after `silence()` it keeps every connection open
 * and forwards what the client sends, but drops everything the server answers — the watch stays
 * connected and hears nothing, as client-node's watches do when they go silent.
 */
async function silencingProxy(
  target: URL,
): Promise<{ url: string; silence: () => void; dropped: () => number }> {
  let silent = false;
  let dropped = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port || 443), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d) => {
      if (silent) dropped += d.length;
      else client.write(d);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => {
      if (!silent) client.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://127.0.0.1:${port}`,
    silence: () => {
      silent = true;
    },
    dropped: () => dropped,
  };
}

/** `kc` with its current cluster reached at `server`. */
function via(kc: KubeConfig, server: string): KubeConfig {
  const current = kc.getCurrentCluster();
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: kc.clusters.map((c) => (c.name === current?.name ? { ...c, server } : c)),
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
  return out;
}

describe('list-watch on the real API server', () => {
  it('re-lists on its timer and keeps following changes', async () => {
    const { ns, k } = await cluster('lw-timer');
    const { lw, seen } = configMaps(k, ns, { relistMs: 1000 });
    lw.start();
    await lw.ready;
    await kubectl('eu-west', ['-n', ns, 'create', 'configmap', 'one', '--from-literal=a=b']);
    await until('configmap one', () => names(lw).includes('one'));
    // each re-list delivers every object again
    await until(
      'three lists',
      () => lw.stats.lists >= 3 && seen.filter((s) => s === 'LISTED:one').length >= 2,
    );
    await kubectl('eu-west', ['-n', ns, 'delete', 'configmap', 'one']);
    await until('configmap one gone', () => !names(lw).includes('one'));
    expect(lw.stats.errors).toBe(0);
  });

  it('a watch from a resourceVersion the API server no longer has (410 Gone) leads to a re-list, then follows changes', async () => {
    const { ns, k } = await cluster('lw-gone');
    await kubectl('eu-west', ['-n', ns, 'create', 'configmap', 'before', '--from-literal=a=b']);
    let lists = 0;
    const { lw, seen } = configMaps(k, ns, {
      relistMs: 600_000, // no timer re-list during the test: only the 410 may cause one
      list: async () => {
        const l = await k.core.listNamespacedConfigMap({ namespace: ns });
        // the first list claims a resourceVersion long compacted away: the watch from it gets 410 Expired
        return lists++ === 0 ? { ...l, metadata: { ...l.metadata, resourceVersion: '1' } } : l;
      },
    });
    lw.start();
    await lw.ready;
    await until('a re-list after the 410', () => lw.stats.expired >= 1 && lw.stats.lists >= 2);
    await kubectl('eu-west', ['-n', ns, 'create', 'configmap', 'after', '--from-literal=a=b']);
    await until('configmap after', () => names(lw).includes('after'));
    expect(seen).toContain('ADDED:after');
    expect(names(lw)).toContain('before');
    expect(lw.stats.errors).toBe(0);
  });

  it('a watch that stays connected but goes silent is caught up by the timed re-list', async () => {
    const { ns, k } = await cluster('lw-silent');
    const server = new URL(k.kc.getCurrentCluster()?.server ?? '');
    const proxy = await silencingProxy(server);
    const { lw, seen } = configMaps(k, ns, {
      kc: via(k.kc, proxy.url), // the watch goes through the proxy; the list does not
      relistMs: 2000,
    });
    lw.start();
    await lw.ready;
    await kubectl('eu-west', ['-n', ns, 'create', 'configmap', 'one', '--from-literal=a=b']);
    await until(
      'the watch to deliver configmap one',
      () => lw.stats.events >= 1 && names(lw).includes('one'),
    );
    proxy.silence();
    const listsBefore = lw.stats.lists;
    const eventsBefore = lw.stats.events;
    await kubectl('eu-west', ['-n', ns, 'delete', 'configmap', 'one']);
    await kubectl('eu-west', ['-n', ns, 'create', 'configmap', 'two', '--from-literal=a=b']);
    // well inside the Watch's own 30 s inactivity timeout, which a silent connection would otherwise wait for
    await until(
      'configmap two, and one gone',
      () => names(lw).includes('two') && !names(lw).includes('one'),
      15_000,
    );
    expect(seen).toContain('DELETED:one'); // found missing from the re-list
    expect(lw.stats.lists).toBeGreaterThan(listsBefore);
    expect(lw.stats.events).toBe(eventsBefore); // it came by the re-list: the watch heard nothing
    expect(proxy.dropped()).toBeGreaterThan(0); // the proxy swallowed what the API server sent
  });
});
