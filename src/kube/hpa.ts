// An app under a HorizontalPodAutoscaler.
//
// The HPA owns the replica count, so a rollout takes its total from the HPA
// (what it last decided, within its min and max) instead of the config. And
// Ferry never fights it: an HPA that targets a track Ferry is shrinking would
// scale it straight back (below `minReplicas` it does so even with
// `behavior.*.selectPolicy: Disabled` — seen on the local 1.34 clusters). So
// while pods move between the tracks Ferry pauses the HPA by pointing it at a
// Deployment that does not exist (`<name>-paused-by-ferry`: the HPA reports
// it cannot get the scale and changes nothing), with the target it had kept
// in an annotation so that a crashed worker's successor resumes the same
// thing. At the end of the rollout (or its rollback) the HPA is pointed at the
// track that now runs the app, and scales it as it scaled the old one.
import type { V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { type KubeClients, kubeErrorMessage, MERGE_OPTIONS } from './client.ts';

/** The Deployment the HPA targeted before Ferry paused it. */
export const ANN_PAUSED_TARGET = 'ferry.dev/paused-target';
const PAUSED_SUFFIX = '-paused-by-ferry';

/** The HPA of an app: it targets one of the app's track Deployments, or is paused by Ferry. */
export async function findHpa(
  k: KubeClients,
  namespace: string,
  deployments: readonly string[],
): Promise<V2HorizontalPodAutoscaler | undefined> {
  const list = await k.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace });
  return list.items.find((h) => {
    if (h.spec?.scaleTargetRef?.kind !== 'Deployment') return false;
    const target = h.metadata?.annotations?.[ANN_PAUSED_TARGET] ?? h.spec.scaleTargetRef.name;
    return deployments.includes(target);
  });
}

/** The replica count the HPA stands for: what it decided last, within its bounds. */
export function hpaReplicas(h: V2HorizontalPodAutoscaler): number {
  const min = h.spec?.minReplicas ?? 1;
  const max = h.spec?.maxReplicas ?? min;
  const decided = h.status?.desiredReplicas || h.status?.currentReplicas || min;
  return Math.max(min, Math.min(max, decided));
}

async function patch(
  k: KubeClients,
  h: V2HorizontalPodAutoscaler,
  body: object,
  what: string,
): Promise<void> {
  const name = h.metadata?.name ?? '';
  const namespace = h.metadata?.namespace ?? '';
  try {
    await k.autoscaling.patchNamespacedHorizontalPodAutoscaler({ name, namespace, body }, MERGE_OPTIONS);
  } catch (err) {
    throw new Error(
      `${k.region}: could not ${what} the autoscaler ${namespace}/${name}: ${kubeErrorMessage(err)}`,
    );
  }
}

/** Stops the HPA from scaling either track; idempotent (the first pause's target is kept). */
export async function pauseHpa(k: KubeClients, h: V2HorizontalPodAutoscaler, appName: string): Promise<void> {
  if (h.metadata?.annotations?.[ANN_PAUSED_TARGET] !== undefined) return;
  const ref = h.spec?.scaleTargetRef;
  await patch(
    k,
    h,
    {
      metadata: { annotations: { [ANN_PAUSED_TARGET]: ref?.name ?? '' } },
      spec: { scaleTargetRef: { ...ref, name: `${appName}${PAUSED_SUFFIX}` } },
    },
    'pause',
  );
}

/** Points the HPA at `deployment` (the track that runs the app now) and ends the pause. */
export async function resumeHpa(
  k: KubeClients,
  h: V2HorizontalPodAutoscaler,
  deployment: string,
): Promise<void> {
  await patch(
    k,
    h,
    {
      metadata: { annotations: { [ANN_PAUSED_TARGET]: null } },
      spec: { scaleTargetRef: { ...h.spec?.scaleTargetRef, name: deployment } },
    },
    'resume',
  );
}
