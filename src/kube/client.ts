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
import { setTimeout as sleepFor } from 'node:timers/promises';
import {
  AppsV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
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

/** Loads the kubeconfig and selects `config.regions[region].context`. */
export function loadKubeConfig(config: FerryConfig, region: string, opts: KubeOptions = {}): KubeConfig {
  const r = config.regions[region];
  if (!r) throw new Error(`unknown region ${region}; known: ${Object.keys(config.regions).join(', ')}`);
  const kc = new KubeConfig();
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

export function kubeClients(config: FerryConfig, region: string, opts: KubeOptions = {}): KubeClients {
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
