// End-to-end checks of the local real infrastructure (infra/infra.sh):
// Ready nodes in both regions, the sample app pulled from a regional
// registry, kubectl logs/exec, and OOM kills as Kubernetes and the kernel
// report them.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureInfra,
  INFRA_SH,
  type InfraInfo,
  kubectl,
  kubectlJson,
  newNamespace,
  REGIONS,
  type Region,
  registryPrefix,
  run,
  skopeoCopy,
  type TestNamespace,
  waitFor,
} from '../support/infra.ts';

interface Condition {
  type: string;
  status: string;
}
interface ContainerStatus {
  name: string;
  image: string;
  imageID: string;
  ready: boolean;
  restartCount: number;
  state: { running?: object; waiting?: { reason?: string }; terminated?: { reason?: string } };
  lastState: { terminated?: { reason?: string; exitCode?: number } };
}
interface Pod {
  metadata: { name: string; uid: string };
  spec: { nodeName?: string };
  status: { phase: string; qosClass?: string; containerStatuses?: ContainerStatus[] };
}
interface NodeList {
  items: {
    metadata: { name: string };
    status: {
      conditions: Condition[];
      nodeInfo: { kubeletVersion: string; containerRuntimeVersion: string };
    };
  }[];
}

let info: InfraInfo;
const namespaces: TestNamespace[] = [];

async function ns(region: Region, prefix: string): Promise<TestNamespace> {
  const n = await newNamespace(region, prefix);
  namespaces.push(n);
  return n;
}

function podManifest(name: string, image: string, memory: string, env: Record<string, string>): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name } },
    spec: {
      terminationGracePeriodSeconds: 2,
      containers: [
        {
          name: 'app',
          image,
          env: Object.entries(env).map(([k, v]) => ({ name: k, value: v })),
          resources: { limits: { memory, cpu: '200m' }, requests: { memory, cpu: '50m' } },
        },
      ],
    },
  });
}

/** oom_kill counts of a memory cgroup and its descendants (cgroup v1 counts them on the victim's cgroup). */
function oomKillCount(dir: string): number {
  const m = /oom_kill (\d+)/.exec(readFileSync(join(dir, 'memory.oom_control'), 'utf8'));
  let n = m ? Number(m[1]) : 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) n += oomKillCount(join(dir, e.name));
  }
  return n;
}

async function getPod(region: Region, namespace: string, name: string): Promise<Pod> {
  return kubectlJson<Pod>(region, ['-n', namespace, 'get', 'pod', name]);
}

beforeAll(async () => {
  info = await ensureInfra();
});

afterAll(async () => {
  await Promise.allSettled(namespaces.map((n) => n.remove()));
});

describe('local infrastructure', () => {
  it('writes infra.json with registries, Redis and both cluster contexts', () => {
    expect(info.redis.url).toBe('redis://127.0.0.1:6390');
    expect(info.registries.primary).toBe('127.0.0.1:5000');
    expect(info.registries.regions).toEqual({ 'eu-west': '127.0.0.1:5001', 'us-east': '127.0.0.1:5002' });
    expect(Object.keys(info.kubernetes.contexts).sort()).toEqual(['eu-west', 'us-east']);
    const kubeconfig = readFileSync(info.kubernetes.kubeconfig, 'utf8');
    expect(kubeconfig).toContain('name: eu-west');
    expect(kubeconfig).toContain('name: us-east');
  });

  it('infra.sh env prints the export lines and check confirms every component runs', async () => {
    const env = await run('bash', [INFRA_SH, 'env']);
    expect(env.stdout).toContain('export REDIS_URL=redis://127.0.0.1:6390');
    expect(env.stdout).toContain(`export KUBECONFIG=${info.kubernetes.kubeconfig}`);
    expect(env.stdout).toContain('export FERRY_REGISTRY_PRIMARY=127.0.0.1:5000');
    const check = await run('bash', [INFRA_SH, 'check', 'redis', 'registries', 'images', 'k8s'], {
      allowFail: true,
    });
    expect(check.code).toBe(0);
    const status = await run('bash', [INFRA_SH, 'status']);
    for (const name of ['redis', 'registry-primary', 'kube-apiserver-eu-west', 'kubelet-us-east']) {
      expect(status.stdout).toMatch(new RegExp(`^${name}\\s+\\d+\\s+running$`, 'm'));
    }
  });

  it('Redis answers with AOF on and no eviction', async () => {
    const port = String(info.redis.port);
    const aof = await run('redis-cli', ['-p', port, 'config', 'get', 'appendonly']);
    const policy = await run('redis-cli', ['-p', port, 'config', 'get', 'maxmemory-policy']);
    expect(aof.stdout).toContain('yes');
    expect(policy.stdout).toContain('noeviction');
  });

  it.each(REGIONS)('%s has a Ready node', async (region) => {
    const nodes = await kubectlJson<NodeList>(region, ['get', 'nodes']);
    expect(nodes.items.map((n) => n.metadata.name)).toContain(info.kubernetes.contexts[region].node);
    for (const n of nodes.items) {
      expect(n.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
      expect(n.status.nodeInfo.kubeletVersion).toBe(info.kubernetes.version);
    }
  });

  it.each(REGIONS)(
    '%s: the sample app rolls out from the regional registry; logs and exec work',
    async (region) => {
      const n = await ns(region, 'app');
      const regional = info.registries.regions[region];
      const image = `${regional}/${registryPrefix()}/hello-app:v1`;
      await skopeoCopy(`${info.images.sampleApp.image}:v1`, image);
      const deployment = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'hello' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'hello' } },
          template: {
            metadata: { labels: { app: 'hello' } },
            spec: {
              terminationGracePeriodSeconds: 2,
              containers: [
                {
                  name: 'app',
                  image,
                  ports: [{ containerPort: 8080 }],
                  readinessProbe: { httpGet: { path: '/ready', port: 8080 }, periodSeconds: 1 },
                  resources: { limits: { memory: '64Mi' } },
                },
              ],
            },
          },
        },
      };
      await kubectl(region, ['-n', n.name, 'apply', '-f', '-'], { input: JSON.stringify(deployment) });
      await kubectl(region, ['-n', n.name, 'rollout', 'status', 'deployment/hello', '--timeout=180s'], {
        timeoutMs: 200_000,
      });
      const pods = await kubectlJson<{ items: Pod[] }>(region, [
        '-n',
        n.name,
        'get',
        'pods',
        '-l',
        'app=hello',
      ]);
      expect(pods.items).toHaveLength(1);
      const pod = pods.items[0];
      if (!pod) throw new Error('no pod for deployment/hello');
      const cs = pod.status.containerStatuses?.[0];
      expect(cs?.ready).toBe(true);
      // the kubelet pulled it from the regional registry (containerd may report
      // the image under another name with the same digest in status.image)
      expect(cs?.imageID).toContain('@sha256:');
      const repo = image.slice(regional.length + 1, image.lastIndexOf(':'));
      const registryLog = readFileSync(join(info.runDir, 'logs', `registry-${region}.log`), 'utf8');
      expect(registryLog).toContain(`/v2/${repo}/manifests/v1`);
      const events = await kubectl(region, [
        '-n',
        n.name,
        'get',
        'events',
        '--field-selector',
        `involvedObject.name=${pod.metadata.name},reason=Pulled`,
        '-o',
        'jsonpath={.items[*].message}',
      ]);
      expect(events).toContain(image);
      expect(pod.spec.nodeName).toBe(info.kubernetes.contexts[region].node);

      // exec: the app answers inside its container and writes its log files
      const body = await kubectl(region, [
        '-n',
        n.name,
        'exec',
        pod.metadata.name,
        '--',
        'wget',
        '-qO-',
        'http://127.0.0.1:8080/',
      ]);
      expect(body).toContain('hello from hello-app v1');
      const appLog = await kubectl(region, [
        '-n',
        n.name,
        'exec',
        pod.metadata.name,
        '--',
        'cat',
        '/var/log/app/app.log',
      ]);
      expect(appLog).toContain('index served');
      const gcLog = await waitFor(
        async () => {
          const out = await kubectl(region, [
            '-n',
            n.name,
            'exec',
            pod.metadata.name,
            '--',
            'tail',
            '-n',
            '5',
            '/var/log/app/gc.log',
          ]);
          return out.includes('GC(') ? out : '';
        },
        { timeoutMs: 20_000, what: 'gc.log lines' },
      );
      expect(gcLog).toMatch(/\[gc\] GC\(\d+\) Pause/);
      // logs: container stdout through the kubelet
      const logs = await kubectl(region, ['-n', n.name, 'logs', pod.metadata.name]);
      expect(logs).toContain('starting hello-app v1');
      expect(logs).toMatch(/GET \/ready/);
    },
  );

  it('a container over its memory limit is OOMKilled (lastState.terminated.reason)', async () => {
    const region: Region = 'eu-west';
    const n = await ns(region, 'oom');
    const image = `${info.images.sampleApp.image}:v1`;
    await kubectl(region, ['-n', n.name, 'apply', '-f', '-'], {
      input: podManifest('hog', image, '48Mi', { OOM_AFTER_SECONDS: '2' }),
    });
    const pod = await waitFor(
      async () => {
        const p = await getPod(region, n.name, 'hog');
        const cs = p.status.containerStatuses?.[0];
        return cs?.lastState.terminated?.reason === 'OOMKilled' ? p : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 1000, what: 'OOMKilled in lastState' },
    );
    const cs = pod.status.containerStatuses?.[0];
    expect(cs?.lastState.terminated?.reason).toBe('OOMKilled');
    expect(cs?.lastState.terminated?.exitCode).toBe(137);
    expect(cs?.restartCount).toBeGreaterThanOrEqual(1);
    const previous = await kubectl(region, ['-n', n.name, 'logs', 'hog', '--previous']);
    expect(previous).toContain('main process');
  });

  it('an OOM kill of a child process is visible on the node (memory cgroup and kernel log), not in pod status', async () => {
    const region: Region = 'eu-west';
    const n = await ns(region, 'oomchild');
    const image = `${info.images.sampleApp.image}:v1`;
    await kubectl(region, ['-n', n.name, 'apply', '-f', '-'], {
      input: podManifest('childhog', image, '64Mi', { OOM_CHILD_AFTER_SECONDS: '2' }),
    });
    await kubectl(region, ['-n', n.name, 'wait', 'pod/childhog', '--for=condition=Ready', '--timeout=120s'], {
      timeoutMs: 130_000,
    });
    const pod = await getPod(region, n.name, 'childhog');
    const qos = pod.status.qosClass === 'Guaranteed' ? '' : `${pod.status.qosClass?.toLowerCase()}/`;
    const cgroup = `/sys/fs/cgroup/memory${info.kubernetes.contexts[region].cgroupRoot}/kubepods/${qos}pod${pod.metadata.uid}`;
    const oomKills = await waitFor(() => oomKillCount(cgroup), {
      timeoutMs: 60_000,
      what: `oom_kill > 0 under ${cgroup} (memory.oom_control)`,
    });
    expect(oomKills).toBeGreaterThanOrEqual(1);
    const dmesg = await run('dmesg', []);
    // the kernel names the pod's memory cgroup in its oom-kill record
    const record = dmesg.stdout
      .split('\n')
      .find((l) => l.includes('oom-kill:') && l.includes(`pod${pod.metadata.uid}`));
    expect(record).toMatch(/constraint=CONSTRAINT_MEMCG.*task=ferry-run/);
    expect(dmesg.stdout).toMatch(/Memory cgroup out of memory: Killed process \d+ \(ferry-run\)/);
    // the main process survived: Kubernetes reports no restart and no OOMKilled
    const after = await getPod(region, n.name, 'childhog');
    const cs = after.status.containerStatuses?.[0];
    expect(cs?.restartCount).toBe(0);
    expect(cs?.state.running).toBeDefined();
    const logs = await kubectl(region, ['-n', n.name, 'logs', 'childhog']);
    expect(logs).toMatch(/child process \d+ exited: signal: killed/);
  });
});
