// What a process keeps between syncs: one client per registry endpoint (so
// bearer tokens and auth challenges are reused) and, per registry, which
// repository is known to hold a blob (the `from` of a cross-repository
// mount). Both are bounded; a pool is an object, so a test or a second
// tenant can have its own.

import { RegistryClient, type RegistryEndpoint } from './client.ts';

const MAX_CLIENTS = 200;
const MAX_HOLDERS_PER_REGISTRY = 50_000;

export class RegistryPool {
  private readonly clients = new Map<string, RegistryClient>();
  private readonly holders = new Map<string, Map<string, string>>();

  client(ep: RegistryEndpoint): RegistryClient {
    const key = JSON.stringify([ep.name, ep.url, ep.username ?? '', ep.password ?? '', ep.insecure ?? false]);
    let c = this.clients.get(key);
    if (!c) {
      c = new RegistryClient(ep);
      this.clients.set(key, c);
      if (this.clients.size > MAX_CLIENTS) this.clients.delete(this.clients.keys().next().value!);
    }
    return c;
  }

  /** A repository of the registry at `registryUrl` known to hold `digest`. */
  holderOf(registryUrl: string, digest: string): string | undefined {
    return this.holders.get(registryUrl)?.get(digest);
  }

  rememberHolder(registryUrl: string, digest: string, repo: string): void {
    let m = this.holders.get(registryUrl);
    if (!m) {
      m = new Map();
      this.holders.set(registryUrl, m);
    }
    m.delete(digest); // re-insert: the map's order is the eviction order
    m.set(digest, repo);
    if (m.size > MAX_HOLDERS_PER_REGISTRY) m.delete(m.keys().next().value!);
  }
}

/** The pool of the process (the worker's syncs, the deploy step's back-to-source copies). */
export const defaultPool = new RegistryPool();
