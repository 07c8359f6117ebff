// The core side of the receiver (port.ts ChatRequestHandler) for the Matrix
// adapter, until commands/ implements it once for every platform (issue 15):
// the same calls the Slack adapter makes — the command grammar and handlers of
// commands/, the lifecycle's approve/reject/steer, the domain's policy — with
// nothing of Matrix in it. Permission checks stay in the domain: approvals go
// through Lifecycle.approve (no self-approval, N-of-M, expiry).
import { handleText } from '../../../commands/handle.ts';
import type { CommandServices } from '../../../commands/handler.ts';
import { durationMs } from '../../domain/duration.ts';
import { may, mayApprove } from '../../domain/policy.ts';
import type { ReleaseRepository } from '../../domain/ports.ts';
import { ownerOfWorkload } from '../../domain/workload.ts';
import type { Logger } from '../../logging.ts';
import { isStoreUnreachable, STORE_UNREACHABLE } from '../../queue/connection.ts';
import { type ChatAnswer, type ChatRequest, type ChatRequestHandler, reply } from '../port.ts';

export interface InterimHandlerDeps {
  services: CommandServices;
  releases: ReleaseRepository;
  announce: (releaseId: string) => Promise<void>;
  silence: (key: string, forMs: number, by: string) => Promise<void>;
  log: Logger;
}

/** What a person reads when their request failed inside Ferry: no internals. */
export const REQUEST_FAILED =
  'Something went wrong inside Ferry; nothing was started. Try again in a minute.';

export function interimHandler(d: InterimHandlerDeps): ChatRequestHandler {
  const { services } = d;
  async function handle(req: ChatRequest): Promise<ChatAnswer> {
    // A platform may hand the same delivery over twice (a sync batch repeated after a crash).
    if (!(await d.releases.once(`chat:${req.deliveryId}`, 86_400))) return { kind: 'none' };
    const user = req.actor.userId;
    const config = services.config();
    switch (req.kind) {
      case 'command': {
        const r = await handleText(req.text, req.actor, services);
        return { kind: 'reply', reply: reply(r.ok, r.text, r.releaseId, r.visibility) };
      }
      case 'reject-reason': {
        const r = await services.lifecycle.reject(req.releaseId, user, req.reason);
        return { kind: 'reply', reply: reply(r.ok, r.text, req.releaseId) };
      }
      case 'silence': {
        const [, region, namespace = '', owner] = req.key.split('/');
        const found = ownerOfWorkload(config, {
          ...(region ? { region } : {}),
          namespace,
          ...(owner ? { owner } : {}),
        });
        const apps = found ? [found.app] : Object.keys(config.apps);
        const envs = Object.keys(config.environments);
        if (!apps.some((a) => envs.some((e) => may(config, user, 'silence', a, e).ok)))
          return { kind: 'reply', reply: reply(false, `You may not silence alerts of ${apps.join(', ')}.`) };
        await d.silence(req.key, durationMs(config.alerts.silenceFor), user);
        return {
          kind: 'reply',
          reply: reply(true, `Silenced for ${config.alerts.silenceFor}: \`${req.key}\`.`),
        };
      }
      case 'release-action': {
        const rel = await d.releases.get(req.releaseId);
        if (!rel)
          return { kind: 'reply', reply: reply(false, `There is no release ${req.releaseId} any more.`) };
        let r: { ok: boolean; text: string };
        switch (req.action) {
          case 'approve':
            r = await services.lifecycle.approve(rel.id, user);
            break;
          case 'reject': {
            const allowed = mayApprove(config, rel, user);
            if (!allowed.ok && rel.requestedBy !== user) {
              r = { ok: false, text: allowed.reason.replace('Approvals for', 'Rejections of') };
              break;
            }
            if (rel.state !== 'awaiting-approval' && rel.state !== 'queued') {
              r = {
                ok: false,
                text: `${rel.id} is ${rel.state}; only a release waiting for approval can be rejected.`,
              };
              break;
            }
            return { kind: 'ask-reason', release: rel };
          }
          case 'rollback': {
            const allowed = may(config, user, 'rollback', rel.app, rel.environment);
            if (!allowed.ok) r = { ok: false, text: allowed.reason };
            else if (rel.state !== 'failed')
              r = {
                ok: false,
                text: `${rel.id} is ${rel.state}; only a failed release is rolled back from its card.`,
              };
            else {
              await services.lifecycle.rollback(rel.id, `rolled back by <@${user}>`);
              r = { ok: true, text: `Rolling ${rel.id} back.` };
            }
            break;
          }
          default:
            r = await services.lifecycle.steer(req.action, rel.id, user);
        }
        if (!r.ok && req.rev !== undefined && req.rev < rel.rev) {
          await d.announce(rel.id);
          return {
            kind: 'reply',
            reply: reply(
              false,
              `${r.text}\n_That card was out of date; it now shows the current state._`,
              rel.id,
            ),
          };
        }
        return { kind: 'reply', reply: reply(r.ok, r.text, rel.id) };
      }
    }
  }
  return {
    async handle(req) {
      try {
        return await handle(req);
      } catch (err) {
        d.log.error({ err: (err as Error).message, kind: req.kind }, 'chat request failed');
        return {
          kind: 'reply',
          reply: reply(false, isStoreUnreachable(err) ? STORE_UNREACHABLE : REQUEST_FAILED),
        };
      }
    },
  };
}
