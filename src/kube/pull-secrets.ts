// Registry credentials for the nodes: one `kubernetes.io/dockerconfigjson`
// Secret per app namespace, named on the namespace's service accounts as an
// imagePullSecret, so every pod of the namespace (the tracks, pre-warm pods)
// pulls with it without the pod spec naming it. Ferry writes it before each
// rollout, so a rotated password reaches the cluster with the next release.
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import type { FerryConfig } from '../domain/config.ts';
import { kubeErrorMessage, MERGE_OPTIONS, readOrUndefined } from './client.ts';

export const PULL_SECRET_NAME = 'ferry-registry';

export interface PullCredential {
  /** host[:port], as in the image references. */
  server: string;
  username: string;
  password: string;
}

/**
 * The credentials a region's nodes pull with: its registry's, when it has a
 * user name and the password is in its variable. Throws, naming the variable
 * and not a value, when a user name is configured but the variable is empty.
 */
export function regionPullCredentials(
  config: FerryConfig,
  region: string,
  env: NodeJS.ProcessEnv = process.env,
): PullCredential[] {
  const reg = config.regions[region]?.registry;
  if (!reg) throw new Error(`unknown region ${region}`);
  if (!reg.username) return [];
  const password = reg.passwordEnv ? env[reg.passwordEnv] : undefined;
  if (!password) {
    throw new Error(
      `registry of ${region} (${new URL(reg.url).host}): no password for user "${reg.username}"` +
        (reg.passwordEnv ? `; $${reg.passwordEnv} is not set` : '; set passwordEnv'),
    );
  }
  return [{ server: new URL(reg.url).host, username: reg.username, password }];
}

/** The `.dockerconfigjson` document, keys sorted so equal credentials give equal bytes. */
export function dockerConfigJson(creds: readonly PullCredential[]): string {
  const auths: Record<string, { username: string; password: string; auth: string }> = {};
  for (const c of [...creds].sort((a, b) => a.server.localeCompare(b.server))) {
    auths[c.server] = {
      username: c.username,
      password: c.password,
      auth: Buffer.from(`${c.username}:${c.password}`).toString('base64'),
    };
  }
  return JSON.stringify({ auths });
}

export type PullSecretChange = 'created' | 'updated' | 'unchanged';

/**
 * Creates or updates the pull Secret in `namespace` and names it on each of
 * `serviceAccounts` (default: the namespace's `default`). Nothing is written
 * when both are already current. Errors name the namespace, never a value.
 */
export async function ensurePullSecret(
  core: CoreV1Api,
  namespace: string,
  creds: readonly PullCredential[],
  serviceAccounts: readonly string[] = ['default'],
): Promise<{ secret: PullSecretChange; serviceAccounts: string[] }> {
  const data = Buffer.from(dockerConfigJson(creds)).toString('base64');
  const where = `pull secret ${namespace}/${PULL_SECRET_NAME}`;
  let change: PullSecretChange = 'unchanged';
  try {
    const existing = await readOrUndefined(() =>
      core.readNamespacedSecret({ name: PULL_SECRET_NAME, namespace }),
    );
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: PULL_SECRET_NAME,
        namespace,
        labels: { 'app.kubernetes.io/managed-by': 'ferry' },
        ...(existing?.metadata?.resourceVersion
          ? { resourceVersion: existing.metadata.resourceVersion }
          : {}),
      },
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': data },
    };
    if (!existing) {
      await core.createNamespacedSecret({ namespace, body });
      change = 'created';
    } else if (
      existing.data?.['.dockerconfigjson'] !== data ||
      existing.type !== 'kubernetes.io/dockerconfigjson'
    ) {
      // The type of a Secret cannot change in place: replace a foreign one.
      if (existing.type !== 'kubernetes.io/dockerconfigjson') {
        await core.deleteNamespacedSecret({ name: PULL_SECRET_NAME, namespace });
        const { resourceVersion: _, ...meta } = body.metadata ?? {};
        await core.createNamespacedSecret({ namespace, body: { ...body, metadata: meta } });
      } else {
        await core.replaceNamespacedSecret({ name: PULL_SECRET_NAME, namespace, body });
      }
      change = 'updated';
    }
  } catch (err) {
    throw new Error(`${where}: ${kubeErrorMessage(err)}`);
  }

  const patched: string[] = [];
  for (const name of serviceAccounts) {
    try {
      const sa = await core.readNamespacedServiceAccount({ name, namespace });
      const current = sa.imagePullSecrets ?? [];
      if (current.some((s) => s.name === PULL_SECRET_NAME)) continue;
      await core.patchNamespacedServiceAccount(
        { name, namespace, body: { imagePullSecrets: [...current, { name: PULL_SECRET_NAME }] } },
        MERGE_OPTIONS,
      );
      patched.push(name);
    } catch (err) {
      throw new Error(`service account ${namespace}/${name} (for ${where}): ${kubeErrorMessage(err)}`);
    }
  }
  return { secret: change, serviceAccounts: patched };
}
