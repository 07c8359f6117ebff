// A kube-apiserver + etcd of the bench's own (the local Kubernetes build in
// ~/.cache/ferry/k8s-<version>/bin, as infra/infra.sh starts them, but on free
// ports with a temp data dir), and kwok playing the kubelet of ~200 fake
// nodes. The shared eu-west/us-east clusters are never touched.
//
// Differences from infra's clusters, each because a bench does not need it:
// the apiserver makes its own self-signed serving cert (--cert-dir) and takes
// a static admin token; no controller-manager or scheduler (the bench sets
// pods' nodeName itself); the ServiceAccount admission plugin is off (no
// controller creates the default ServiceAccount); etcd skips fsync, so the
// figures measure Ferry and the apiserver, not this machine's disk.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from '../../test/support/redis.ts';

const cache = process.env.FERRY_CACHE ?? join(homedir(), '.cache', 'ferry');
const repo = resolve(import.meta.dirname, '..', '..');

/** The local Kubernetes build (infra/lib/build-k8s.sh); the newest one if several. */
export function k8sBin(): string {
  const dirs = readdirSync(cache)
    .filter((d) => /^k8s-\d/.test(d) && existsSync(join(cache, d, 'bin', 'kube-apiserver')))
    .sort();
  const d = dirs.at(-1);
  if (!d) throw new Error(`no local Kubernetes build in ${cache} (infra/infra.sh builds it)`);
  return join(cache, d, 'bin');
}

/** kwok, built (once, then cached) by infra/lib/kwok.sh; returns its path and the cold build time. */
export function ensureKwok(): { bin: string; buildSeconds: number | undefined } {
  const bin = execFileSync('bash', [join(repo, 'infra', 'lib', 'kwok.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  const f = join(bin, '..', '.build-seconds');
  return { bin, buildSeconds: existsSync(f) ? Number(readFileSync(f, 'utf8')) : undefined };
}

function waitUntil(what: string, ms: number, ok: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + ms;
  return (async () => {
    for (;;) {
      if (await ok().catch(() => false)) return;
      if (Date.now() > until) throw new Error(`${what} not ready after ${ms} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
}

export interface BenchCluster {
  dir: string;
  url: string;
  token: string;
  /** A kubeconfig file with one context, `context`. */
  kubeconfig: string;
  context: string;
  pids: { etcd: number; apiserver: number; kwok?: number };
  /** One API request (JSON in and out); throws on a status ≥ 400 unless `allow` lists it. */
  api<T = unknown>(method: string, path: string, body?: unknown, allow?: number[]): Promise<T>;
  startKwok(bin: string): Promise<void>;
  /**
   * The Deployment and ReplicaSet controllers and the scheduler (the local build), so Deployments Ferry
   * applies get pods on the kwok nodes. Not the garbage collector: the bench's own pods name ReplicaSets
   * that do not exist, and it would delete all 18,000.
   */
  startControllers(): Promise<void>;
  stop(): Promise<void>;
}

export async function startBenchCluster(dir: string): Promise<BenchCluster> {
  const bin = k8sBin();
  mkdirSync(join(dir, 'etcd'), { recursive: true, mode: 0o700 });
  mkdirSync(join(dir, 'certs'), { recursive: true });
  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const token = randomBytes(16).toString('hex');
  writeFileSync(join(dir, 'tokens.csv'), `${token},bench-admin,bench-admin,"system:masters"\n`, {
    mode: 0o600,
  });
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
  writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));

  const children: ChildProcess[] = [];
  const start = (name: string, cmd: string, args: string[]) => {
    const log = openSync(join(dir, `${name}.log`), 'a');
    const c = spawn(cmd, args, { stdio: ['ignore', log, log] });
    children.push(c);
    return c;
  };
  const etcd = start('etcd', join(bin, 'etcd'), [
    '--name=bench',
    `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
    `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-cluster=bench=http://127.0.0.1:${peerPort}`,
    '--initial-cluster-state=new',
    '--quota-backend-bytes=8589934592',
    '--unsafe-no-fsync',
    '--log-level=warn',
  ]);
  await waitUntil('etcd', 60_000, async () => {
    const r = await fetch(`http://127.0.0.1:${etcdPort}/health`);
    return (await r.text()).includes('"health":"true"');
  });
  const apiserver = start('kube-apiserver', join(bin, 'kube-apiserver'), [
    `--etcd-servers=http://127.0.0.1:${etcdPort}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${apiPort}`,
    `--cert-dir=${join(dir, 'certs')}`,
    `--token-auth-file=${join(dir, 'tokens.csv')}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
    '--api-audiences=https://kubernetes.default.svc.cluster.local',
    '--service-cluster-ip-range=10.250.0.0/16',
    '--authorization-mode=RBAC',
    '--disable-admission-plugins=ServiceAccount',
    // a thousand requests at once from the bench's loaders must not be turned away
    '--max-requests-inflight=1600',
    '--max-mutating-requests-inflight=800',
    '--enable-priority-and-fairness=false',
    '--profiling=false',
    '--v=0',
  ]);
  const url = `https://127.0.0.1:${apiPort}`;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 64, rejectUnauthorized: false });
  const api = <T>(method: string, path: string, body?: unknown, allow: number[] = []): Promise<T> =>
    new Promise((resolveP, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const contentType = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
      const req = https.request(
        `${url}${path}`,
        {
          method,
          agent,
          headers: {
            authorization: `Bearer ${token}`,
            accept: 'application/json',
            ...(data ? { 'content-type': contentType, 'content-length': Buffer.byteLength(data) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status >= 400 && !allow.includes(status))
              reject(new Error(`${method} ${path}: ${status} ${text.slice(0, 300)}`));
            else {
              let v: unknown = text;
              try {
                v = text ? JSON.parse(text) : undefined;
              } catch {
                // plain text (/readyz answers "ok")
              }
              resolveP(v as T);
            }
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  await waitUntil('kube-apiserver', 120_000, async () => {
    const r = await api<string | { status?: string }>('GET', '/readyz').catch(() => undefined);
    return r !== undefined;
  });
  const kubeconfig = join(dir, 'kubeconfig');
  const context = 'ferry-scale';
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: ${context}`,
      '  cluster:',
      `    server: ${url}`,
      '    insecure-skip-tls-verify: true',
      'users:',
      '- name: bench-admin',
      '  user:',
      `    token: ${token}`,
      'contexts:',
      `- name: ${context}`,
      '  context:',
      `    cluster: ${context}`,
      '    user: bench-admin',
      `current-context: ${context}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const pids: BenchCluster['pids'] = { etcd: etcd.pid ?? 0, apiserver: apiserver.pid ?? 0 };
  return {
    dir,
    url,
    token,
    kubeconfig,
    context,
    pids,
    api,
    async startKwok(kwokBin: string) {
      const stages = join(dir, 'kwok-stages.yaml');
      writeFileSync(
        stages,
        execFileSync('bash', [join(repo, 'infra', 'lib', 'kwok.sh'), 'stages'], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'inherit'],
        }),
      );
      const kwok = start('kwok', kwokBin, [
        `--kubeconfig=${kubeconfig}`,
        `--config=${stages}`,
        // Its INFO level logs every pod it patches: 18,000 lines of JSON for nothing.
        '--v=WARN',
        '--manage-all-nodes=false',
        '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
        '--cidr=10.240.0.0/12',
        '--node-ip=10.239.0.1',
        '--node-lease-duration-seconds=40',
      ]);
      pids.kwok = kwok.pid ?? 0;
      await new Promise((r) => setTimeout(r, 500));
      if (kwok.exitCode !== null)
        throw new Error(`kwok exited: ${readFileSync(join(dir, 'kwok.log'), 'utf8').slice(-2000)}`);
    },
    async startControllers() {
      const [kcmPort, schedPort] = [await freePort(), await freePort()];
      const auth = [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        '--bind-address=127.0.0.1',
        '--leader-elect=false',
        '--v=0',
      ];
      const kcm = start('kube-controller-manager', join(bin, 'kube-controller-manager'), [
        ...auth,
        `--secure-port=${kcmPort}`,
        '--controllers=deployment,replicaset',
        '--use-service-account-credentials=false',
        '--kube-api-qps=200',
        '--kube-api-burst=400',
      ]);
      const sched = start('kube-scheduler', join(bin, 'kube-scheduler'), [
        ...auth,
        `--secure-port=${schedPort}`,
      ]);
      await waitUntil('kube-controller-manager and kube-scheduler', 120_000, async () => {
        for (const [name, c] of [
          ['kube-controller-manager', kcm],
          ['kube-scheduler', sched],
        ] as const)
          if (c.exitCode !== null)
            throw new Error(`${name} exited: ${readFileSync(join(dir, `${name}.log`), 'utf8').slice(-2000)}`);
        const ok = await Promise.all(
          [kcmPort, schedPort].map(
            (port) =>
              new Promise<boolean>((res) => {
                https
                  .get(`https://127.0.0.1:${port}/healthz`, { rejectUnauthorized: false }, (r) => {
                    r.resume();
                    res(r.statusCode === 200);
                  })
                  .on('error', () => res(false));
              }),
          ),
        );
        return ok.every(Boolean);
      });
    },
    async stop() {
      agent.destroy();
      for (const c of children.reverse()) {
        if (c.exitCode !== null) continue;
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

/** Runs `fn` over `items` with `n` in flight. */
export async function pool<T>(
  items: T[],
  n: number,
  fn: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i] as T, i);
      }
    }),
  );
}

/** `count` fake nodes that kwok manages (its annotation), Ready once kwok sees them. */
export async function createNodes(c: BenchCluster, count: number): Promise<string[]> {
  const names = Array.from({ length: count }, (_, i) => `kwok-node-${String(i).padStart(3, '0')}`);
  await pool(names, 20, async (name) => {
    await c.api(
      'POST',
      '/api/v1/nodes',
      {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name,
          annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
          labels: {
            type: 'kwok',
            'kubernetes.io/hostname': name,
            'topology.kubernetes.io/zone': `z${name.at(-1)}`,
          },
        },
        spec: {},
        status: {
          allocatable: { cpu: '64', memory: '256Gi', pods: '250' },
          capacity: { cpu: '64', memory: '256Gi', pods: '250' },
          nodeInfo: { kubeletVersion: 'fake', architecture: 'amd64', operatingSystem: 'linux' },
        },
      },
      [409],
    );
    // The apiserver taints a new node not-ready until the node lifecycle controller sees it Ready. The
    // bench does not run that controller (under load it could take kwok's nodes for dead and evict every
    // pod), so the taint goes here: kwok keeps the nodes Ready, and the scheduler may place pods on them.
    await c.api('PATCH', `/api/v1/nodes/${name}`, { spec: { taints: null } });
  });
  return names;
}
