// Kubernetes client helpers: one KubeConfig per region (the region's context
// in the kubeconfig), typed API clients, server-side apply with an explicit
// content type. (The list+watch is src/kube/list-watch.ts.)
//
// Server-side apply: every write Ferry makes to a Deployment is an apply
// (`application/apply-patch+yaml`) under a named field manager. `ferry` owns
// the pod template of the track it rolls out; `ferry-scale` owns the replica
// count and role annotations it changes on the other track (so scaling a
// track never re-sends, and never takes over, a template someone else set).
// Both apply with force: these are fields Ferry owns by design.
import { createHash } from 'node:crypto';
import { setTimeout as sleepFor } from 'node:timers/promises';
import {
  AppsV1Api,
  AutoscalingV2Api,
  bufferFromFileOrString,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  type RequestContext,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { FerryConfig } from '../domain/config.ts';

export const FIELD_MANAGER = 'ferry';
export const SCALE_MANAGER = 'ferry-scale';

export interface KubeClients {
  region: string;
  context: string;
  kc: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  autoscaling: AutoscalingV2Api;
}

export interface KubeOptions {
  /** A kubeconfig file; default: $KUBECONFIG, then ~/.kube/config (client-node's default rules). */
  kubeconfig?: string;
  /** An already loaded kubeconfig (e.g. a service account's), used instead of a file. */
  kubeConfig?: KubeConfig;
}

type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

/**
 * A KubeConfig whose API calls share one connection pool per TLS identity.
 *
 * client-node 2.0 gives every API call a new undici Agent: a new TLS
 * handshake, and a connection kept open (keep-alive) that no later call
 * reuses: 200 reads left 200 connections open to the apiserver, and a
 * worker carrying 100 releases held hundreds, with the TLS buffers they pin.
 * Here the call's fresh Agent (never connected yet) is swapped for the pool of
 * its cluster, user and TLS material, so calls reuse connections as kubectl
 * does. Certificates read from files are part of the key: a rotated one gets
 * a new pool.
 */
export class PooledKubeConfig extends KubeConfig {
  private readonly pools = new Map<string, Dispatcher>();

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    if (!fresh) return;
    const key = this.tlsIdentity();
    const pooled = this.pools.get(key);
    if (pooled) {
      context.setDispatcher(pooled);
      void fresh.close().catch(() => {});
    } else this.pools.set(key, fresh);
  }

  private tlsIdentity(): string {
    const cluster = this.getCurrentCluster();
    const user = this.getCurrentUser();
    const h = createHash('sha256');
    for (const part of [
      cluster?.name,
      cluster?.server,
      cluster?.tlsServerName,
      String(cluster?.skipTLSVerify ?? ''),
      cluster?.proxyUrl,
      user?.name,
    ])
      h.update(`${part ?? ''}\0`);
    for (const material of [
      bufferFromFileOrString(cluster?.caFile, cluster?.caData),
      bufferFromFileOrString(user?.certFile, user?.certData),
      bufferFromFileOrString(user?.keyFile, user?.keyData),
    ])
      h.update(material ?? '').update('\0');
    return h.digest('hex');
  }
}

/** Loads the kubeconfig and selects `config.regions[region].context`. */
export function loadKubeConfig(config: FerryConfig, region: string, opts: KubeOptions = {}): KubeConfig {
  const r = config.regions[region];
  if (!r) throw new Error(`unknown region ${region}; known: ${Object.keys(config.regions).join(', ')}`);
  const kc = new PooledKubeConfig();
  if (opts.kubeConfig) kc.loadFromString(opts.kubeConfig.exportConfig());
  else if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
  else kc.loadFromDefault();
  if (!kc.getContextObject(r.context)) {
    throw new Error(
      `the kubeconfig has no context "${r.context}" for region ${region}; contexts: ${kc
        .getContexts()
        .map((c) => c.name)
        .join(', ')}`,
    );
  }
  kc.setCurrentContext(r.context);
  return kc;
}

/** The pod's own service account (loadFromCluster), pooled. */
export function inClusterKubeConfig(): PooledKubeConfig {
  const kc = new PooledKubeConfig();
  kc.loadFromCluster();
  return kc;
}

/** One set of clients per region, context and kubeconfig file: each holds its connection pool. */
const clientCache = new Map<string, KubeClients>();

/**
 * The typed clients of a region. Without options they are shared by every caller in the process (keyed
 * by the region's context, so a reloaded config that points a region elsewhere gets new ones).
 */
export function kubeClients(config: FerryConfig, region: string, opts: KubeOptions = {}): KubeClients {
  if (opts.kubeConfig || opts.kubeconfig) return makeClients(config, region, opts);
  const key = [region, config.regions[region]?.context, process.env.KUBECONFIG].join('\0');
  let k = clientCache.get(key);
  if (!k) {
    k = makeClients(config, region, opts);
    clientCache.set(key, k);
  }
  return k;
}

function makeClients(config: FerryConfig, region: string, opts: KubeOptions): KubeClients {
  const kc = loadKubeConfig(config, region, opts);
  return {
    region,
    context: kc.getCurrentContext(),
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    autoscaling: kc.makeApiClient(AutoscalingV2Api),
  };
}

/** Options for a server-side apply request: the content type set explicitly. */
export const APPLY_OPTIONS = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
export const MERGE_OPTIONS = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** HTTP status of a client-node error, if it has one. */
export function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  if (typeof e?.response?.statusCode === 'number') return e.response.statusCode;
  return undefined;
}

export function isNotFound(err: unknown): boolean {
  return statusOf(err) === 404;
}

/** A short, readable message for a Kubernetes API error (the Status message when there is one). */
export function kubeErrorMessage(err: unknown): string {
  const e = err as { body?: unknown; message?: string };
  let body = e?.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      // keep the text
    }
  }
  const msg = (body as { message?: string } | undefined)?.message;
  const code = statusOf(err);
  return `${code ? `HTTP ${code}: ` : ''}${msg ?? (typeof body === 'string' ? body : (e?.message ?? String(err)))}`;
}

/** Returns undefined for a 404, the object otherwise. */
export async function readOrUndefined<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export interface ApplyObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; [k: string]: unknown };
  [k: string]: unknown;
}

/** Server-side apply of a Deployment (apply-patch+yaml, force) under `manager`. */
export async function applyDeployment(
  k: KubeClients,
  obj: ApplyObject,
  manager: string = FIELD_MANAGER,
): Promise<import('@kubernetes/client-node').V1Deployment> {
  try {
    return await k.apps.patchNamespacedDeployment(
      {
        name: obj.metadata.name,
        namespace: obj.metadata.namespace,
        body: obj,
        fieldManager: manager,
        force: true,
      },
      APPLY_OPTIONS,
    );
  } catch (err) {
    throw new Error(
      `apply deployment ${obj.metadata.namespace}/${obj.metadata.name} in ${k.region}: ${kubeErrorMessage(err)}`,
    );
  }
}

/** Sleep that ends early (without throwing) when the signal aborts; the caller checks the signal next. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  await sleepFor(ms, undefined, signal ? { signal } : {}).catch(() => {});
}
