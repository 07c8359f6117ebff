// The app namespaces of a config, created in every region where missing. In
// production a platform team creates namespaces (Ferry's RBAC cannot); the
// local run and the tests use this with the admin kubeconfig.
import type { FerryConfig } from '../domain/config.ts';
import { managedNamespaces } from '../domain/workload.ts';
import { kubeClients, statusOf } from './client.ts';

export async function ensureNamespaces(config: FerryConfig): Promise<string[]> {
  const created: string[] = [];
  const names = managedNamespaces(config);
  for (const region of Object.keys(config.regions)) {
    const k = kubeClients(config, region);
    for (const name of names) {
      try {
        await k.core.createNamespace({
          body: { metadata: { name, labels: { 'ferry.dev/managed': 'true' } } },
        });
        created.push(`${region}/${name}`);
      } catch (err) {
        if (statusOf(err) !== 409) throw err;
      }
    }
  }
  return created;
}
