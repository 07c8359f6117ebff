// The list-watch loop against an API server that misbehaves the way real
// ones do for client-node: a watch that breaks mid-stream, one that returns
// an error status, a 410 Gone, and one that goes silent. The loop must
// watch again (with backoff) after an error, re-list and deliver every object
// again after a 410; and it re-lists on its timer even when the watch looks
// healthy. (A local HTTP server plays the API server; no cluster needed.
// test/e2e/list-watch.test.ts does the same against the real one.)
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListWatch } from '../../src/kube/list-watch.ts';
import { logger } from '../../src/logging.ts';

let server: Server;
let kc: KubeConfig;
let lists = 0;
let watches = 0;
let rv = 10;
/** What the n-th watch request does. */
let plan: ((res: ServerResponse, n: number) => void)[] = [];
const open = new Set<ServerResponse>();

const pod = (name: string, v: number): V1Pod => ({
  metadata: { name, namespace: 'ns', uid: `uid-${name}`, resourceVersion: String(v) },
});

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.searchParams.get('watch') === 'true') {
      const n = watches++;
      open.add(res);
      res.on('close', () => open.delete(res));
      const step =
        plan[n] ?? ((r: ServerResponse) => r.writeHead(200, { 'content-type': 'application/json' }));
      step(res, n);
      return;
    }
    lists++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        kind: 'PodList',
        items: [pod('a', rv), pod('b', rv)],
        metadata: { resourceVersion: String(rv) },
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
    currentContext: 'fake',
  });
});

afterAll(async () => {
  for (const r of open) r.destroy();
  await new Promise((r) => server.close(r));
});

function loop(relistMs = 60_000) {
  const seen: string[] = [];
  const core = {
    list: async () => {
      const res = await fetch(`${kc.getCurrentCluster()?.server}/api/v1/namespaces/ns/pods`);
      const body = (await res.json()) as { items: V1Pod[]; metadata: { resourceVersion: string } };
      return body;
    },
  };
  const lw = new ListWatch<V1Pod>({
    name: 'test',
    kc,
    path: '/api/v1/namespaces/ns/pods',
    list: core.list,
    onObject: (type, p) => {
      seen.push(`${type}:${p.metadata?.name}`);
    },
    relistMs,
    maxBackoffMs: 200,
    log: logger('lw').child({}, { level: 'silent' }),
  });
  return { lw, seen };
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(fn: () => boolean, ms = 10_000) {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('timed out');
    await wait(20);
  }
}

describe('list-watch under a misbehaving API server', () => {
  it('after a watch broken mid-stream or an error status it watches again, after a 410 Gone it re-lists and delivers every object again', async () => {
    lists = 0;
    watches = 0;
    plan = [
      // 1: one event, then the connection breaks
      (res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(`${JSON.stringify({ type: 'MODIFIED', object: pod('a', ++rv) })}\n`);
        setTimeout(() => res.socket?.destroy(), 50);
      },
      // 2: the server refuses (500)
      (res) => {
        res.writeHead(500);
        res.end('boom');
      },
      // 3: resourceVersion too old
      (res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(
          `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, message: 'too old resource version' } })}\n`,
        );
      },
      // 4: healthy, an event arrives
      (res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(`${JSON.stringify({ type: 'ADDED', object: pod('c', ++rv) })}\n`);
      },
    ];
    const { lw, seen } = loop();
    lw.start();
    await until(() => seen.includes('ADDED:c'));
    lw.stop();
    expect(seen.filter((s) => s === 'MODIFIED:a')).toHaveLength(1);
    // the first list and the one after the 410; a broken stream or a 500 is followed by a new watch
    // from the last resourceVersion (after a backoff), which needs no list
    expect(lists).toBeGreaterThanOrEqual(2);
    expect(seen.filter((s) => s === 'LISTED:b').length).toBe(lists);
    expect(lw.stats.errors).toBeGreaterThanOrEqual(2);
  });

  it('re-lists on its timer even when the watch is silent and looks healthy', async () => {
    lists = 0;
    watches = 0;
    plan = []; // every watch: 200 and then nothing, forever
    const { lw, seen } = loop(300);
    lw.start();
    // The server counts a list when it answers; the watch sees it a moment later.
    await until(() => lists >= 3 && seen.filter((s) => s === 'LISTED:a').length >= 3, 10_000);
    lw.stop();
    expect(seen.filter((s) => s === 'LISTED:a').length).toBeGreaterThanOrEqual(3);
    expect(lw.stats.errors).toBe(0);
  });
});
