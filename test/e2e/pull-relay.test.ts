// The throttled pre-pull against a real kubelet on containerd: the pull pods
// of a waiting release pull through the node's relay (src/registry/pull-relay.ts)
// at no more than the configured share, the rollout's pods, which name the
// region registry, then find the layers on the node, and a reject cuts a pull
// in flight. The region registry sits behind a counting proxy, so what each
// pull read from it is counted outside Ferry.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FerryConfig } from '../../src/domain/config.ts';
import type { BuiltImage } from '../../src/domain/ports.ts';
import { pullAheadStopReason, type Release } from '../../src/domain/release.ts';
import { kubeClients } from '../../src/kube/client.ts';
import { KubeRollout } from '../../src/kube/rollout.ts';
import { logger } from '../../src/logging.ts';
import { MediaTypes, RegistryClient } from '../../src/registry/client.ts';
import { PullRelay } from '../../src/registry/pull-relay.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { ensureInfra, infra, newNamespace, type TestNamespace, waitFor } from '../support/infra.ts';
import { deployableRelease, kubeTestConfig, sampleImage } from '../support/kube.ts';
import { type CountingProxy, freePort, randomLayer, startCountingProxy } from '../support/registry.ts';

const MiB = 1024 * 1024;
const LAYER = 24 * MiB;
/** The node's pre-pull budget in these tests: 8 MiB/s (share 1 of 67.108864 Mbit/s). */
const BUDGET = 8 * MiB;

let ns: TestNamespace;
let rt: Runtime;
let proxy: CountingProxy;
let relay: PullRelay;
let config: FerryConfig;
let regionRegistry: RegistryClient;

beforeAll(async () => {
  const info = await ensureInfra(['redis', 'registries', 'images', 'k8s']);
  await sampleImage('v1', ['eu-west']);
  ns = await newNamespace('eu-west', 'relay');
  regionRegistry = new RegistryClient({
    name: 'eu-west',
    url: `http://${info.registries.regions['eu-west']}`,
  });
  proxy = await startCountingProxy(`http://${info.registries.regions['eu-west']}`);
  const port = await freePort();
  config = kubeTestConfig(ns.name, { regions: ['eu-west'] });
  // The rollout's pods name the region registry through the counting proxy (a loopback registry,
  // like the relay: containerd reads both over plain HTTP without any configuration on the node).
  config.regions['eu-west']!.registry = { ...config.regions['eu-west']!.registry, url: proxy.url };
  config.prePull = {
    ...config.prePull,
    throttle: { nodeBandwidthMbps: (BUDGET * 8) / 1_000_000, share: 1, relayPort: port },
  };
  rt = createRuntime({
    config,
    redisUrl: info.redis.url,
    prefix: `pr${randomUUID().slice(0, 8)}`,
    name: 'relay-test',
  });
  relay = new PullRelay({
    port,
    bytesPerSecond: () => BUDGET,
    upstream: (region) =>
      region === 'eu-west' ? new RegistryClient({ name: region, url: proxy.url }) : undefined,
    stopReason: async (id) => pullAheadStopReason(await rt.releases.get(id)),
    checkMs: 250,
    log: logger('pull-relay-test'),
  });
  await relay.start();
}, 1_800_000);

afterAll(async () => {
  await relay?.close();
  await proxy?.stop();
  await rt?.close();
  await ns?.remove().catch(() => {});
});

/** hello-app v1 plus a fresh random layer, pushed to the region registry; never on the node before. */
async function bigImage(): Promise<BuiltImage & { layer: string; ref: string }> {
  const repo = 'ferry/hello-app';
  const base = await regionRegistry.getManifest(repo, 'v1');
  if (!('layers' in base.json)) throw new Error('hello-app:v1 is an index; expected one manifest');
  const cfg = JSON.parse(
    Buffer.from(await regionRegistry.readBlob(repo, base.json.config.digest)).toString(),
  );
  const layer = randomLayer(LAYER, `relay-${randomUUID().slice(0, 8)}`);
  await regionRegistry.pushBlobChunked(repo, layer.blob, { digest: layer.digest });
  cfg.rootfs.diff_ids.push(layer.diffId);
  const cfgBytes = Buffer.from(JSON.stringify(cfg));
  const cfgDigest = await regionRegistry.pushBlob(repo, cfgBytes);
  const docker = base.mediaType === MediaTypes.dockerManifest;
  const manifest = {
    ...base.json,
    config: { ...base.json.config, digest: cfgDigest, size: cfgBytes.byteLength },
    layers: [
      ...base.json.layers,
      {
        mediaType: docker ? MediaTypes.dockerLayerGzip : MediaTypes.ociLayerGzip,
        digest: layer.digest,
        size: layer.size,
      },
    ],
  };
  const tag = `relay-${randomUUID().slice(0, 8)}`;
  const digest = await regionRegistry.putManifest(repo, tag, {
    bytes: Buffer.from(JSON.stringify(manifest)),
    mediaType: base.mediaType,
  });
  return {
    cached: false,
    image: `${infra().registries.primary}/${repo}:${tag}`,
    digest,
    layer: layer.digest,
    ref: `${new URL(proxy.url).host}/${repo}@${digest}`,
  };
}

function rolloutOf(release: Release, image: { image: string; digest: string }): KubeRollout {
  return new KubeRollout(
    kubeClients(config, 'eu-west'),
    config,
    {
      releaseId: release.id,
      app: release.app,
      environment: release.environment,
      version: release.version,
      region: 'eu-west',
      image,
    },
    { pollMs: 100, prewarmTimeoutMs: 120_000 },
  );
}

describe('pre-pull through the node relay (eu-west, real kubelet)', () => {
  it('pulls at no more than the share, and the rollout pods then find every layer on the node', async () => {
    const img = await bigImage();
    const release = await deployableRelease(rt, `relay-${randomUUID().slice(0, 6)}`, img);
    const rollout = rolloutOf(release, img);
    expect(rollout.pullReference('prepull')).toBe(
      `127.0.0.1:${config.prePull.throttle?.relayPort}/prepull/eu-west/${release.id}/ferry/hello-app@${img.digest}`,
    );
    expect(rollout.pullReference('prewarm')).toBe(img.ref); // a batch's pre-warm is never throttled

    proxy.reset();
    const bytes0 = relay.stats.bytes;
    const t0 = performance.now();
    await rollout.prewarm(1, { purpose: 'prepull' });
    const seconds = (performance.now() - t0) / 1000;
    const relayed = relay.stats.bytes - bytes0;
    // Every byte of the new layer came from the region registry through the relay, and no faster than the budget.
    expect(proxy.servedByBlob.get(img.layer)).toBeGreaterThanOrEqual(LAYER * 0.99);
    expect(relayed).toBeGreaterThanOrEqual(LAYER * 0.99);
    expect(relayed / seconds).toBeLessThanOrEqual(BUDGET * 1.05);

    // The rollout's pod names the region registry: its pull reads the manifest, not the layer again.
    proxy.reset();
    const core = kubeClients(config, 'eu-west').core;
    await core.createNamespacedPod({
      namespace: ns.name,
      body: {
        metadata: { name: 'after-prepull' },
        spec: {
          terminationGracePeriodSeconds: 0,
          containers: [{ name: 'app', image: img.ref, imagePullPolicy: 'IfNotPresent' }],
        },
      },
    });
    await waitFor(
      async () => {
        const p = await core.readNamespacedPod({ name: 'after-prepull', namespace: ns.name });
        const waiting = p.status?.containerStatuses?.[0]?.state?.waiting?.reason;
        if (waiting === 'ErrImagePull' || waiting === 'ImagePullBackOff') throw new Error(waiting);
        return p.status?.containerStatuses?.[0]?.state?.running;
      },
      { timeoutMs: 120_000, what: 'the rollout pod running' },
    );
    expect(proxy.servedByBlob.get(img.layer) ?? 0).toBe(0);
    expect(proxy.requests.some((r) => r.path.includes(`/manifests/${img.digest}`))).toBe(true);
  });

  it('a reject cuts the pull in flight, and a later pull of that release is refused with the reason', async () => {
    const img = await bigImage();
    const release = await deployableRelease(rt, `relay-${randomUUID().slice(0, 6)}`, img);
    const rollout = rolloutOf(release, img);
    proxy.reset();
    const pulling = rollout.prewarm(1, { purpose: 'prepull' }).then(
      () => 'pulled',
      (err: Error) => err.message,
    );
    await waitFor(() => (proxy.servedByBlob.get(img.layer) ?? 0) > 2 * MiB, {
      timeoutMs: 60_000,
      what: 'the pull under way',
    });
    const cut0 = relay.stats.cut;
    await rt.releases.patch(release.id, (r) => ({ ...r, state: 'rejected' }));
    await waitFor(() => relay.stats.cut > cut0 && relay.active === 0, { timeoutMs: 10_000, what: 'the cut' });
    // containerd tries again and is refused: the pod reports the pull failed, and the layer never finished.
    expect(await pulling).toMatch(
      /could not pull 127\.0\.0\.1:\d+\/prepull\/eu-west\/.*(ErrImagePull|ImagePullBackOff)/,
    );
    expect(proxy.servedByBlob.get(img.layer) ?? 0).toBeLessThan(LAYER);
    const res = await fetch(
      `http://127.0.0.1:${config.prePull.throttle?.relayPort}/v2/prepull/eu-west/${release.id}/ferry/hello-app/manifests/${img.digest}`,
    );
    expect(res.status).toBe(403);
    expect(await res.text()).toContain(`the pre-pull of ${release.id} stopped: the release is rejected`);
  });
});
