// Slack's pace as the notifier's client keeps it: each call reserves its turn on its bucket, a new card
// goes ahead of the replies waiting in its channel, and a turn far off is handed back (SendLater).
import { describe, expect, it } from 'vitest';
import { SendLater } from '../../src/chat/port.ts';
import { AHEAD, type ChatClient, pacedClient } from '../../src/chat/slack/delivery.ts';

function recordingClient() {
  const sent: string[] = [];
  const client: ChatClient = {
    chat: {
      postMessage: async (a) => {
        sent.push(String(a['text']));
        return { ok: true, ts: String(sent.length), channel: String(a['channel']) };
      },
      update: async (a) => {
        sent.push(String(a['text']));
        return { ok: true };
      },
      postEphemeral: async () => ({ ok: true }),
    },
    filesUploadV2: async () => ({}),
  };
  return { sent, client };
}

describe('the paced Slack client', () => {
  it('sends a new card ahead of the replies already waiting in its channel, and nothing else is reordered', async () => {
    const { sent, client } = recordingClient();
    const paced = pacedClient(client, { postMessage: { count: 1, perMs: 150, burst: 1 } });
    const replies = ['r1', 'r2', 'r3'].map((text) => paced.chat.postMessage({ channel: 'C1', text }));
    const card = paced.chat.postMessage({ [AHEAD]: true, channel: 'C1', text: 'card' });
    const elsewhere = paced.chat.postMessage({ channel: 'C2', text: 'other channel' });
    await Promise.all([...replies, card, elsewhere]);
    expect(sent.filter((t) => t !== 'other channel')).toEqual(['r1', 'card', 'r2', 'r3']);
    // The other channel's bucket is its own: it went at once, second of all.
    expect(sent.indexOf('other channel')).toBe(1);
  });

  it('does not pass the marker on to Slack', async () => {
    const seen: Record<string | symbol, unknown>[] = [];
    const { client } = recordingClient();
    const paced = pacedClient({
      ...client,
      chat: { ...client.chat, postMessage: async (a) => (seen.push(a), { ok: true, ts: '1' }) },
    });
    await paced.chat.postMessage({ [AHEAD]: true, channel: 'C1', text: 'card' });
    expect(Object.getOwnPropertySymbols(seen[0])).toEqual([]);
    expect(seen[0]).toEqual({ channel: 'C1', text: 'card' });
  });

  it('hands back a call whose turn is over a second off, and keeps that turn for it', async () => {
    const { sent, client } = recordingClient();
    const paced = pacedClient(client, { update: { count: 1, perMs: 1500, burst: 1 } });
    await paced.chat.update({ channel: 'C1', ts: '1', text: 'first edit' });
    const later = await paced.chat.update({ channel: 'C1', ts: '2', text: 'second edit' }).catch((e) => e);
    expect(later).toBeInstanceOf(SendLater);
    expect((later as SendLater).afterMs).toBeGreaterThan(1000);
    // A third card's edit queues behind the kept turn: its own is further off still.
    const third = await paced.chat.update({ channel: 'C1', ts: '3', text: 'third edit' }).catch((e) => e);
    expect((third as SendLater).afterMs).toBeGreaterThan((later as SendLater).afterMs);
    expect(sent).toEqual(['first edit']);
  });
});
