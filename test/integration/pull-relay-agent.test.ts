// `ferry watch node-agent` with `prePull.throttle` in its config serves the
// pre-pull relay on the node's loopback: anonymous reads there are answered
// from a region registry that needs Ferry's credentials, only for a release
// that still waits, and the bytes are counted in the agent's metrics. (The
// pull through it by a real kubelet, its pace and its cut: test/e2e/pull-relay.test.ts.)
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { RegistryClient } from '../../src/registry/client.ts';
import { clusterReleaseId } from '../../src/runners/deploy.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { deployableRelease } from '../support/kube.ts';
import { NODE, REPO_ROOT as ROOT, STARTUP_MS, started, writeUnreachableKubeconfig } from '../support/node.ts';
import { freePort, TestRedis } from '../support/redis.ts';
import {
  buildImage,
  pushImage,
  randomLayer,
  type StartedRegistry,
  startRegistry,
} from '../support/registry.ts';

const PASSWORD = 'relay-test-password';
let redis: TestRedis;
let registry: StartedRegistry;
let rt: Runtime;
let agent: ChildProcess;
let relayPort: number;
let agentPort: number;
const prefix = `relay${process.pid}`;
const output: string[] = [];

beforeAll(async () => {
  redis = await TestRedis.start();
  registry = await startRegistry({ htpasswd: { ferry: PASSWORD } });
  const dir = mkdtempSync(join(tmpdir(), 'ferry-relay-agent-'));
  mkdirSync(join(dir, 'cgroup'));
  relayPort = await freePort();
  agentPort = await freePort();
  const config = parse(readFileSync(join(ROOT, 'examples', 'ferry.yaml'), 'utf8'));
  config.regions['eu-west'].registry = {
    url: registry.url,
    username: 'ferry',
    passwordEnv: 'FERRY_TEST_RELAY_PASSWORD',
  };
  config.prePull = { throttle: { nodeBandwidthMbps: 800, share: 0.5, relayPort } };
  const configFile = join(dir, 'ferry.yaml');
  await writeUnreachableKubeconfig(join(dir, 'kubeconfig'));
  writeFileSync(configFile, stringify(config));
  rt = createRuntime({ config: configFile, redisUrl: redis.url, prefix, name: 'relay-agent-test' });
  agent = spawn(NODE, [join(ROOT, 'bin/ferry.mjs'), 'watch', 'node-agent', '--config', configFile], {
    env: {
      ...process.env,
      REDIS_URL: redis.url,
      FERRY_PREFIX: prefix,
      FERRY_REGION: 'eu-west',
      NODE_NAME: 'relay-test',
      FERRY_CGROUP_ROOTS: join(dir, 'cgroup'),
      KUBECONFIG: join(dir, 'kubeconfig'),
      FERRY_HEALTH_PORT: String(agentPort),
      FERRY_TEST_RELAY_PASSWORD: PASSWORD,
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  agent.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  await started(agent, /pre-pull relay on 127\.0\.0\.1:\d+ for eu-west, at most 47\.7 MiB\/s per node/);
}, STARTUP_MS + 60_000);

afterAll(async () => {
  if (agent && agent.exitCode === null) agent.kill('SIGKILL');
  await rt?.close();
  await registry?.stop();
  await redis?.stop();
});

describe('the node agent serves the pre-pull relay', () => {
  it("answers a waiting release's pull from the credentialed region registry, and refuses any other", async () => {
    const img = buildImage([randomLayer(512 * 1024)]);
    const pusher = new RegistryClient({
      name: 'eu-west',
      url: registry.url,
      username: 'ferry',
      password: PASSWORD,
    });
    const digest = await pushImage(pusher, 'apps/payments', 'v1', img);
    // Anonymous reads of the registry itself are refused: whatever the relay hands on, it read with Ferry's login.
    expect((await fetch(`${registry.url}/v2/apps/payments/manifests/${digest}`)).status).toBe(401);

    const release = await deployableRelease(
      rt,
      'v1',
      { image: 'registry/apps/payments:v1', digest, cached: false },
      'payments',
      'test',
    );
    // The pull pods name the release as the cluster records it: its id and when it was requested.
    const id = clusterReleaseId(release);
    const base = `http://127.0.0.1:${relayPort}/v2/prepull/eu-west/${id}/apps/payments`;
    expect((await fetch(`http://127.0.0.1:${relayPort}/v2/`)).status).toBe(200);

    const manifest = await fetch(`${base}/manifests/${digest}`);
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get('docker-content-digest')).toBe(digest);
    expect(Buffer.from(await manifest.arrayBuffer()).equals(img.manifest.bytes)).toBe(true);
    const layer = img.layers[0]!;
    const blob = await fetch(`${base}/blobs/${layer.digest}`);
    expect(Buffer.from(await blob.arrayBuffer()).equals(layer.blob)).toBe(true);
    // containerd resumes a cut layer with a Range read.
    const rest = await fetch(`${base}/blobs/${layer.digest}`, { headers: { range: 'bytes=1000-' } });
    expect(rest.status).toBe(206);
    expect(Buffer.from(await rest.arrayBuffer()).equals(layer.blob.subarray(1000))).toBe(true);

    const metrics = await (await fetch(`http://127.0.0.1:${agentPort}/metrics`)).text();
    const counted = Number(/ferry_prepull_relay_bytes_total\{region="eu-west"\} (\d+)/.exec(metrics)?.[1]);
    expect(counted).toBe(img.manifest.bytes.byteLength + layer.size + layer.size - 1000);

    // A region this node does not serve, an unknown release and a release past waiting are refused, saying why.
    const other = await fetch(
      `http://127.0.0.1:${relayPort}/v2/prepull/us-east/${id}/apps/payments/manifests/${digest}`,
    );
    expect(other.status).toBe(404);
    expect(await other.text()).toContain('this node does not pull for region us-east');
    const gone = await fetch(
      `http://127.0.0.1:${relayPort}/v2/prepull/eu-west/r999999/apps/payments/manifests/${digest}`,
    );
    expect(gone.status).toBe(403);
    expect(await gone.text()).toContain('the pre-pull of r999999 stopped: the release is gone');
    // The same id from another Redis (another request time) is not this release.
    const other2 = await fetch(
      `http://127.0.0.1:${relayPort}/v2/prepull/eu-west/${release.id}.${(release.requestedAt - 1).toString(36)}/apps/payments/manifests/${digest}`,
    );
    expect(other2.status).toBe(403);
    await rt.releases.patch(release.id, (r) => ({ ...r, state: 'deploying' }));
    const late = await fetch(`${base}/manifests/${digest}`);
    expect(late.status).toBe(403);
    expect(await late.text()).toContain('the release is deploying');
    // Tags are not served: a pull pod names a digest, so what a node pulls ahead is pinned.
    expect((await fetch(`${base}/manifests/v1`)).status).toBe(404);
  });
});
