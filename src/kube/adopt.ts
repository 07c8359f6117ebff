// Taking over a Deployment Ferry did not create (made by kubectl, Helm or an
// older platform) without restarting a pod.
//
// A Deployment's selector is immutable, so Ferry cannot turn it into one of
// its two tracks. Instead the adopted Deployment plays track a as it is:
// adoption writes only metadata (labels and annotations — never the pod
// template, so no pod restarts), marking it Ferry's stable track and
// recording the labels its pods carry for the team's Service. The next
// release grows track b (`<name>-b`, whose pods carry those labels too, so the
// Service keeps selecting every pod) batch by batch while the adopted
// Deployment shrinks, Ready pods never below the replica count. The adopted
// Deployment stays at 0 replicas as that release's rollback target, and is
// deleted by the release after, when Ferry needs track a again.
import type { V1Deployment } from '@kubernetes/client-node';
import type { FerryConfig } from '../domain/config.ts';
import { lookup } from '../domain/lookup.ts';
import type { ReleaseRepository } from '../domain/ports.ts';
import { placementOf } from '../domain/workload.ts';
import { type Actor, type Adopter, type AdoptRequest, ephemeral, type Reply } from '../ports.ts';
import { applyDeployment, type KubeClients, kubeErrorMessage, readOrUndefined } from './client.ts';
import { ANN, type AppTarget, LABEL_APP, LABEL_ENV, LABEL_TRACK, trackName } from './rollout.ts';

/** The field manager of adoption's metadata writes. */
export const ADOPT_MANAGER = 'ferry-adopt';

export type AdoptionPlan =
  | { kind: 'adoptable'; target: AppTarget; deployment: V1Deployment; changes: string[]; summary: string }
  | { kind: 'nothing'; target: AppTarget; reason: string };

function describe(d: V1Deployment): string {
  const replicas = d.spec?.replicas ?? 0;
  const ready = d.status?.readyReplicas ?? 0;
  const images = (d.spec?.template?.spec?.containers ?? []).map((c) => c.image).join(', ');
  const managers = [...new Set((d.metadata?.managedFields ?? []).map((f) => f.manager).filter(Boolean))];
  return `${replicas} replicas (${ready} Ready), image ${images || '?'}, selector ${JSON.stringify(d.spec?.selector?.matchLabels ?? {})}${managers.length ? `, written by ${managers.join(', ')}` : ''}`;
}

/** What adopting the target's Deployment would change (reads only). */
export async function planAdoption(k: KubeClients, t: AppTarget): Promise<AdoptionPlan> {
  const where = `${t.region}: ${t.namespace}/${t.name}`;
  let d: V1Deployment | undefined;
  try {
    d = await readOrUndefined(() =>
      k.apps.readNamespacedDeployment({ name: t.name, namespace: t.namespace }),
    );
  } catch (err) {
    return { kind: 'nothing', target: t, reason: `${where}: cannot read it: ${kubeErrorMessage(err)}` };
  }
  if (!d)
    return {
      kind: 'nothing',
      target: t,
      reason: `${where}: no such Deployment; nothing to adopt (the first release creates it).`,
    };
  const selector = d.spec?.selector?.matchLabels ?? {};
  if (selector[LABEL_TRACK])
    return {
      kind: 'nothing',
      target: t,
      reason: `${where}: already Ferry's (track ${selector[LABEL_TRACK]}).`,
    };
  const env = d.metadata?.labels?.[LABEL_ENV];
  if (env && env !== t.environment)
    return {
      kind: 'nothing',
      target: t,
      reason: `${where}: belongs to environment ${env}; ${t.environment} cannot adopt it.`,
    };
  if (d.metadata?.annotations?.[ANN.adopted] === 'true')
    return {
      kind: 'nothing',
      target: t,
      reason: `${where}: adopted already; the next release takes it over.`,
    };
  if ((d.spec?.selector?.matchExpressions ?? []).length)
    return {
      kind: 'nothing',
      target: t,
      reason: `${where}: its selector uses matchExpressions, which Ferry's second track cannot mirror; give it a matchLabels selector first.`,
    };
  const podLabels = d.spec?.template?.metadata?.labels ?? {};
  const b = trackName(t, 'b');
  return {
    kind: 'adoptable',
    target: t,
    deployment: d,
    summary: `${where}: ${describe(d)}`,
    changes: [
      `labels ${LABEL_APP}=${t.app}, ${LABEL_ENV}=${t.environment} and annotations ${ANN.adopted}, ${ANN.role}=stable on the Deployment; its pod template is not touched, so no pod restarts`,
      `the next release starts ${t.namespace}/${b} with pods labelled ${JSON.stringify(selector)} as well (so a Service selecting ${JSON.stringify(selector)} keeps every pod), grows it batch by batch while ${t.name} shrinks, Ready pods never below ${d.spec?.replicas ?? 0}`,
      `${t.name} then stays at 0 replicas as the rollback target, and the release after that replaces it with Ferry's own track`,
      ...(Object.keys(podLabels).some((k) => !(k in selector))
        ? [
            `pod labels beyond the selector (${Object.keys(podLabels)
              .filter((k) => !(k in selector))
              .join(
                ', ',
              )}) are not copied; put them in apps.${t.app}.workload.labels if something selects on them`,
          ]
        : []),
    ],
  };
}

/** Adopts the Deployment of a plan: metadata only, under its own field manager. */
export async function adopt(
  k: KubeClients,
  plan: Extract<AdoptionPlan, { kind: 'adoptable' }>,
): Promise<void> {
  const t = plan.target;
  const selector = plan.deployment.spec?.selector?.matchLabels ?? {};
  await applyDeployment(
    k,
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: t.name,
        namespace: t.namespace,
        labels: { [LABEL_APP]: t.app, [LABEL_ENV]: t.environment },
        annotations: {
          [ANN.adopted]: 'true',
          [ANN.role]: 'stable',
          [ANN.serviceLabels]: JSON.stringify(selector),
        },
      },
    },
    ADOPT_MANAGER,
  );
}

export interface KubeAdoptionDeps {
  config: () => FerryConfig;
  releases?: Pick<ReleaseRepository, 'lockHolder'>;
  clients: (region: string) => KubeClients;
}

/** `/release adopt`: the dry run in every region of the environment, then (with confirm) the takeover. */
export class KubeAdoptionService implements Adopter {
  private readonly deps: KubeAdoptionDeps;

  constructor(deps: KubeAdoptionDeps) {
    this.deps = deps;
  }

  // The permission (`adopt` on the app and environment) is checked by the command before this runs.
  async request(cmd: AdoptRequest, _actor: Actor): Promise<Reply> {
    const config = this.deps.config();
    const app = lookup(config.apps, cmd.app);
    if (!app) return ephemeral(false, `Ferry does not know the app "${cmd.app}".`);
    const env = cmd.environment ?? app.defaultEnvironment;
    const envCfg = lookup(config.environments, env);
    if (!envCfg) return ephemeral(false, `Ferry does not know the environment "${env}".`);
    const holder = await this.deps.releases?.lockHolder(cmd.app, env);
    if (holder)
      return ephemeral(
        false,
        `Release ${holder} of ${cmd.app} is in flight in ${env}; adopt when it has ended.`,
      );
    const plans = await Promise.all(
      envCfg.regions.map((region) =>
        planAdoption(this.deps.clients(region), placementOf(config, cmd.app, env, region)),
      ),
    );
    const adoptable = plans.filter((p) => p.kind === 'adoptable');
    const lines = plans.flatMap((p) =>
      p.kind === 'adoptable' ? [`• ${p.summary}`, ...p.changes.map((c) => `    – ${c}`)] : [`• ${p.reason}`],
    );
    if (!adoptable.length)
      return ephemeral(false, [`Nothing to adopt for ${cmd.app} in ${env}:`, ...lines].join('\n'));
    if (!cmd.confirm)
      return ephemeral(
        true,
        [
          `Adopting ${cmd.app} in ${env} would change (nothing changed yet):`,
          ...lines,
          `To go ahead: \`/release adopt ${cmd.app} to ${env} confirm\``,
        ].join('\n'),
      );
    for (const p of adoptable) await adopt(this.deps.clients(p.target.region), p);
    return {
      ok: true,
      visibility: 'channel',
      text: `${cmd.app} in ${env} is Ferry's now (${adoptable.map((p) => `${p.target.region}: ${p.target.namespace}/${p.target.name}`).join('; ')}); no pod restarted. The next \`/release ${cmd.app} <version> to ${env}\` moves its pods onto Ferry's tracks in batches.`,
    };
  }
}
