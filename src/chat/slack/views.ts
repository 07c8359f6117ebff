// Modals Ferry opens: the reason for a rejection.
import type { Release } from '../../domain/release.ts';
import { clip, escapeMrkdwn } from './render.ts';

export const REJECT_CALLBACK = 'reject_reason';
export const REJECT_INPUT = { block: 'reason', action: 'text' } as const;

export function rejectModal(rel: Release, channel: string) {
  return {
    type: 'modal' as const,
    callback_id: REJECT_CALLBACK,
    private_metadata: JSON.stringify({ id: rel.id, channel, rev: rel.rev }),
    title: { type: 'plain_text' as const, text: 'Reject release' },
    submit: { type: 'plain_text' as const, text: 'Reject' },
    close: { type: 'plain_text' as const, text: 'Cancel' },
    blocks: [
      {
        type: 'section',
        block_id: 'what',
        text: {
          type: 'mrkdwn' as const,
          text: clip(
            escapeMrkdwn(`Reject *${rel.id}*: ${rel.app} ${rel.version} → ${rel.environment}?`),
            3000,
          ),
        },
      },
      {
        type: 'input',
        block_id: REJECT_INPUT.block,
        label: { type: 'plain_text' as const, text: 'Reason' },
        element: {
          type: 'plain_text_input' as const,
          action_id: REJECT_INPUT.action,
          multiline: true,
          max_length: 2000,
          placeholder: { type: 'plain_text' as const, text: 'Why not this release?' },
        },
      },
    ],
  };
}
