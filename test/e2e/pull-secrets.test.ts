// Pull secrets on a real cluster: a docker-registry with htpasswd on the
// node's loopback, the infra's pause image copied into it, and pods that pull
// it with imagePullPolicy Always. Without Ferry's pull secret the kubelet's
// pull is refused; with it (named on the namespace's default service
// account, not in the pod spec) the pod runs; a stale password fails the
// pull again until Ferry writes the current one.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensurePullSecret, PULL_SECRET_NAME, type PullCredential } from '../../src/kube/pull-secrets.ts';
import { tempDir } from '../support/build-fixtures.ts';
import { ensureInfra, newNamespace, skopeoCopy, type TestNamespace, waitFor } from '../support/infra.ts';
import { type StartedRegistry, startRegistry } from '../support/registry.ts';

const USER = 'robot$pull';
let password: string;
let registry: StartedRegistry;
let image: string;
let core: CoreV1Api;
const namespaces: TestNamespace[] = [];

beforeAll(async () => {
  const info = await ensureInfra(['registries', 'images', 'k8s']);
  password = `pw-${randomBytes(10).toString('hex')}`;
  registry = await startRegistry({ htpasswd: { [USER]: password } });
  const host = new URL(registry.url).host;
  image = `${host}/ferry/pause:pull-secret-test`;
  const dir = await tempDir('pull-secrets');
  const authfile = join(dir, 'auth.json');
  await writeFile(
    authfile,
    JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${USER}:${password}`).toString('base64') } } }),
    { mode: 0o600 },
  );
  await skopeoCopy(info.images.pause, image, ['--dest-authfile', authfile]);
  const kc = new KubeConfig();
  kc.loadFromDefault();
  kc.setCurrentContext('eu-west');
  core = kc.makeApiClient(CoreV1Api);
}, 1_800_000);

afterAll(async () => {
  for (const ns of namespaces) await ns.remove().catch(() => {});
  await registry?.stop();
});

async function namespace(): Promise<string> {
  const ns = await newNamespace('eu-west', 'pull');
  namespaces.push(ns);
  return ns.name;
}

async function startPod(ns: string, name: string): Promise<V1Pod> {
  return core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name },
      spec: {
        terminationGracePeriodSeconds: 0,
        containers: [{ name: 'pause', image, imagePullPolicy: 'Always' }],
      },
    },
  });
}

/** Waits until the pod runs, or its pull has failed; returns which, and the kubelet's message. */
async function pullOutcome(
  ns: string,
  name: string,
): Promise<{ outcome: 'running' | 'refused'; message: string }> {
  return waitFor(
    async () => {
      const pod = await core.readNamespacedPod({ name, namespace: ns });
      const st = pod.status?.containerStatuses?.[0];
      if (st?.state?.running) return { outcome: 'running' as const, message: '' };
      const waiting = st?.state?.waiting;
      if (waiting && /ErrImagePull|ImagePullBackOff/.test(waiting.reason ?? '')) {
        return { outcome: 'refused' as const, message: waiting.message ?? '' };
      }
      return undefined;
    },
    { timeoutMs: 120_000, what: `pod ${ns}/${name} to run or fail its pull` },
  );
}

const creds = (pw: string): PullCredential[] => [
  { server: new URL(registry.url).host, username: USER, password: pw },
];

describe('pull secrets in app namespaces', () => {
  it('without the secret the pull is refused; with it, named on the default service account, the pod runs', async () => {
    const bare = await namespace();
    await startPod(bare, 'no-secret');
    const refused = await pullOutcome(bare, 'no-secret');
    expect(refused.outcome).toBe('refused');
    expect(refused.message).toMatch(/401|unauthorized|authorization failed/i);

    const ns = await namespace();
    const r = await ensurePullSecret(core, ns, creds(password));
    expect(r).toEqual({ secret: 'created', serviceAccounts: ['default'] });
    const sa = await core.readNamespacedServiceAccount({ name: 'default', namespace: ns });
    expect(sa.imagePullSecrets?.map((s) => s.name)).toContain(PULL_SECRET_NAME);
    const secret = await core.readNamespacedSecret({ name: PULL_SECRET_NAME, namespace: ns });
    expect(secret.type).toBe('kubernetes.io/dockerconfigjson');

    const pod = await startPod(ns, 'with-secret');
    // The service account admission put the secret on the pod; the pod spec did not name it.
    expect(pod.spec?.imagePullSecrets?.map((s) => s.name)).toEqual([PULL_SECRET_NAME]);
    expect((await pullOutcome(ns, 'with-secret')).outcome).toBe('running');
  });

  it('keeps the secret current: unchanged credentials write nothing; a stale password is replaced', async () => {
    const ns = await namespace();
    await ensurePullSecret(core, ns, creds(`stale-${randomBytes(6).toString('hex')}`));
    await startPod(ns, 'stale');
    expect((await pullOutcome(ns, 'stale')).outcome).toBe('refused');

    const before = await core.readNamespacedSecret({ name: PULL_SECRET_NAME, namespace: ns });
    const updated = await ensurePullSecret(core, ns, creds(password));
    expect(updated).toEqual({ secret: 'updated', serviceAccounts: [] });
    const after = await core.readNamespacedSecret({ name: PULL_SECRET_NAME, namespace: ns });
    expect(after.metadata?.resourceVersion).not.toBe(before.metadata?.resourceVersion);

    const again = await ensurePullSecret(core, ns, creds(password));
    expect(again).toEqual({ secret: 'unchanged', serviceAccounts: [] });
    const still = await core.readNamespacedSecret({ name: PULL_SECRET_NAME, namespace: ns });
    expect(still.metadata?.resourceVersion).toBe(after.metadata?.resourceVersion);

    await startPod(ns, 'current');
    expect((await pullOutcome(ns, 'current')).outcome).toBe('running');
  });
});
