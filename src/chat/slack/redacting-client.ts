// The last exit before Slack: every message, edit, ephemeral and uploaded
// file the notifier sends passes through the one redactor here. Messages are
// redacted when announced already; this also covers what is rendered from
// stored state (a card's failure reason) and anything added later.
import { type RedactionPattern, redactDeep, redactText } from '../../logs/redact.ts';
import type { ChatClient } from './delivery.ts';

/** Redacts the text-bearing arguments of a Web API call; ids, timestamps and channels are kept. */
function redactArgs(
  args: Record<string, unknown>,
  patterns: readonly RedactionPattern[],
): Record<string, unknown> {
  const out = { ...args };
  for (const key of ['text', 'content', 'title', 'filename', 'initial_comment'] as const) {
    if (typeof out[key] === 'string') out[key] = redactText(out[key] as string, patterns);
  }
  if (Array.isArray(out['blocks'])) out['blocks'] = redactBlocks(out['blocks'], patterns);
  return out;
}

/** Only the `text` fields of blocks: action values and block ids must stay intact for the buttons. */
function redactBlocks(value: unknown, patterns: readonly RedactionPattern[]): unknown {
  if (Array.isArray(value)) return value.map((v) => redactBlocks(v, patterns));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = k === 'text' ? redactDeep(v, patterns) : redactBlocks(v, patterns);
  }
  return out;
}

export function redactingClient(client: ChatClient, patterns: () => readonly RedactionPattern[]): ChatClient {
  return {
    chat: {
      postMessage: (args) => client.chat.postMessage(redactArgs(args, patterns())),
      update: (args) => client.chat.update(redactArgs(args, patterns())),
      postEphemeral: (args) => client.chat.postEphemeral(redactArgs(args, patterns())),
    },
    filesUploadV2: (args) => client.filesUploadV2(redactArgs(args, patterns())),
  };
}
