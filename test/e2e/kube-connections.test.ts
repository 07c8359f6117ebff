// Ferry's calls to a region's API server reuse their connections, as kubectl
// does. client-node 2.0 on its own gives every call a new TLS connection and
// keeps it open; a worker carrying a hundred releases held hundreds, and the
// memory they pin (src/kube/client.ts, PooledKubeConfig). Measured here at
// the server's door: a TCP proxy in front of the real API server counts the
// connections each client opens, the plain client in the same run beside it.
import net from 'node:net';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeClients } from '../../src/kube/client.ts';
import { exampleConfig } from '../support/config.ts';
import { ensureInfra } from '../support/infra.ts';

const config = exampleConfig();
let proxy: net.Server;
let opened = 0;
const sockets = new Set<net.Socket>();
let viaProxy: KubeConfig;

beforeAll(async () => {
  await ensureInfra(['k8s']);
  const base = new KubeConfig();
  base.loadFromDefault();
  base.setCurrentContext(config.regions['eu-west']?.context as string);
  const cluster = base.getCurrentCluster();
  if (!cluster) throw new Error('no cluster for eu-west in the kubeconfig');
  const target = new URL(cluster.server);
  proxy = net.createServer((down) => {
    opened += 1;
    const up = net.connect(Number(target.port), target.hostname);
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    down.pipe(up).pipe(down);
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const { port } = proxy.address() as net.AddressInfo;
  viaProxy = new KubeConfig();
  viaProxy.loadFromString(base.exportConfig());
  viaProxy.setCurrentContext(base.getCurrentContext());
  // Same host (the certificate names 127.0.0.1), the proxy's port.
  viaProxy.clusters = viaProxy.clusters.map((c) =>
    c.name === cluster.name ? { ...c, server: `https://127.0.0.1:${port}` } : c,
  );
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
});

/** Connections the proxy accepted while `fn` ran. */
async function connectionsFor(fn: () => Promise<unknown>): Promise<number> {
  const before = opened;
  await fn();
  return opened - before;
}

describe("a region's API clients", () => {
  it('make one connection for 50 calls in a row, where the plain client makes one per call', async () => {
    const ferry = kubeClients(config, 'eu-west', { kubeConfig: viaProxy }).core;
    const plain = viaProxy.makeApiClient(CoreV1Api);
    const calls = (api: CoreV1Api, n: number) => async () => {
      for (let i = 0; i < n; i++)
        expect((await api.readNamespace({ name: 'default' })).metadata?.name).toBe('default');
    };
    expect(await connectionsFor(calls(ferry, 50))).toBe(1);
    // Why Ferry pools: the library alone opens a connection per call.
    expect(await connectionsFor(calls(plain, 10))).toBe(10);
  });

  it('open no more connections than calls in flight, and reuse them afterwards', async () => {
    const ferry = kubeClients(config, 'eu-west', { kubeConfig: viaProxy }).core;
    const burst = () => Promise.all(Array.from({ length: 8 }, () => ferry.listNamespace({ limit: 1 })));
    const first = await connectionsFor(burst);
    expect(first).toBeGreaterThanOrEqual(1);
    expect(first).toBeLessThanOrEqual(8);
    expect(await connectionsFor(burst)).toBe(0);
  });

  it('are shared across callers of the same region', () => {
    expect(kubeClients(config, 'eu-west')).toBe(kubeClients(config, 'eu-west'));
    expect(kubeClients(config, 'eu-west')).not.toBe(kubeClients(config, 'us-east'));
  });
});
