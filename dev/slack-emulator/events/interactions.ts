// What people do in the workspace, turned into what Slack sends the bot: slash commands, button clicks
// and menu picks (block_actions), modal submissions and closes, plain messages (Events API), the
// url_verification handshake and retries — and what Slack then shows (acks, Slackbot errors, modal
// response_action's).
import { randomBytes } from 'node:crypto';
import type { ClickButtonInput, SigningOverrides, SlashCommandInput, SubmitViewInput } from '../options.ts';
import type { Block, Delivery, Json, StoredMessage, StoredView } from '../types.ts';
import { isObj, rand } from '../util.ts';
import { closeViews, makeView, publicView, replaceView } from '../web-api/views.ts';
import type { Workspace } from '../workspace.ts';
import type { Deliverer } from './delivery.ts';
import { applyResponse } from './response-url.ts';

const SLACKBOT = 'USLACKBOT';

/** The signing overrides of an input (forged or mis-dated requests), without undefined keys. */
function signing(input: SigningOverrides): SigningOverrides {
  return {
    ...(input.signingSecret !== undefined ? { signingSecret: input.signingSecret } : {}),
    ...(input.timestamp !== undefined ? { timestamp: input.timestamp } : {}),
  };
}

function findActionElement(
  blocks: Block[],
  actionId: string,
  blockId?: string,
): { block: Block; element: Json } | undefined {
  for (const b of blocks) {
    if (blockId && b['block_id'] !== blockId) continue;
    const els: unknown[] = [
      ...(Array.isArray(b['elements']) ? b['elements'] : []),
      ...(b['accessory'] ? [b['accessory']] : []),
    ];
    for (const e of els) if (isObj(e) && e['action_id'] === actionId) return { block: b, element: e };
  }
  return undefined;
}

/** view.state.values for a submission: the given values, else each input's initial value. */
function stateValues(v: StoredView, given: SubmitViewInput['values']): Record<string, Record<string, Json>> {
  const values: Record<string, Record<string, Json>> = {};
  for (const b of v.blocks) {
    if (b['type'] !== 'input' || !isObj(b['element'])) continue;
    const el = b['element'];
    const blockId = String(b['block_id']);
    const actionId = String(el['action_id']);
    const forBlock = given?.[blockId];
    const raw = typeof forBlock === 'object' ? forBlock[actionId] : (forBlock ?? given?.[actionId]);
    const initial = typeof el['initial_value'] === 'string' ? el['initial_value'] : undefined;
    const val = (raw as string | undefined) ?? initial;
    const type = String(el['type']);
    let state: Json;
    if (type === 'static_select' || type === 'radio_buttons') {
      const opt = ((el['options'] as Json[] | undefined) ?? []).find((o) => o['value'] === val);
      state = { type, selected_option: opt ?? null };
    } else if (type === 'checkboxes' || type === 'multi_static_select') {
      const wanted = (val ?? '').split(',').filter(Boolean);
      const opts = ((el['options'] as Json[] | undefined) ?? []).filter((o) =>
        wanted.includes(String(o['value'])),
      );
      state = { type, selected_options: opts };
    } else if (type === 'users_select') state = { type, selected_user: val ?? null };
    else if (type === 'conversations_select' || type === 'channels_select')
      state = { type, selected_conversation: val ?? null };
    else state = { type, value: val ?? null };
    values[blockId] = { [actionId]: state };
  }
  return values;
}

export class Interactions {
  private readonly ws: Workspace;
  private readonly deliverer: Deliverer;
  /** Whether the bot can receive events at all (a request URL, or a Socket Mode app that connected). */
  private readonly reachable: () => boolean;

  constructor(ws: Workspace, deliverer: Deliverer, reachable: () => boolean) {
    this.ws = ws;
    this.deliverer = deliverer;
    this.reachable = reachable;
  }

  /**
   * A user runs a slash command: Slack sends the signed form to the bot (HTTP) or a `slash_commands`
   * envelope (Socket Mode), then shows the ack's text/blocks (ephemeral unless `response_type: in_channel`)
   * or an error from Slackbot if the app did not answer in time.
   */
  async slashCommand(input: SlashCommandInput): Promise<Delivery> {
    const ws = this.ws;
    const ch = ws.channelOrThrow(input.channelId);
    const user = ws.users.get(input.userId);
    if (!user) throw new Error(`unknown user ${input.userId}`);
    const command = input.command ?? '/release';
    const fields: Record<string, string> = {
      token: ws.verificationToken,
      team_id: ws.team.id,
      team_domain: ws.team.domain,
      channel_id: ch.id,
      channel_name: ch.isIm ? 'directmessage' : ch.name,
      user_id: user.id,
      user_name: user.name,
      command,
      text: input.text ?? '',
      api_app_id: ws.bot.appId,
      is_enterprise_install: 'false',
      response_url: ws.newResponseUrl({ kind: 'command', channel: ch.id, user: user.id }),
      trigger_id: ws.newTrigger(user.id, ch.id),
    };
    const d = await this.deliverer.deliver('slash_commands', 'slash_command', fields, signing(input));
    this.afterCommand(d);
    return d;
  }

  private afterCommand(d: Delivery): void {
    const ws = this.ws;
    const p = d.payload as Record<string, string>;
    const channel = p['channel_id'] ?? '';
    const user = p['user_id'] ?? '';
    const slackbotError = (error: string): void => {
      ws.addEphemeral({
        channel,
        user,
        from: SLACKBOT,
        text: `${p['command']} failed with the error "${error}"`,
        source: 'slackbot',
      });
    };
    if (!d.acked) {
      slackbotError(d.error ?? 'dispatch_failed');
      return;
    }
    const r = d.response;
    if (r === undefined || r === '') return;
    const body: Json = typeof r === 'string' ? { text: r } : isObj(r) ? r : {};
    if (!body['text'] && !body['blocks']) return;
    if (body['response_type'] === 'in_channel') {
      // Slack shows the invocation from the user before an in-channel response.
      ws.storeMessage(ws.userMessage(channel, user, `${p['command']} ${p['text'] ?? ''}`.trim()));
    }
    const result = applyResponse(ws, { kind: 'command', channel, user }, body);
    if (result !== 'ok') slackbotError(result);
  }

  /**
   * A user clicks a button (or picks an option) on a message the bot posted; Slack sends a
   * `block_actions` payload built from the stored message.
   */
  async clickButton(input: ClickButtonInput): Promise<Delivery> {
    const ws = this.ws;
    const ch = ws.channelOrThrow(input.channelId);
    const user = ws.users.get(input.userId);
    if (!user) throw new Error(`unknown user ${input.userId}`);
    const msg = ws.findMessage(ch.id, input.messageTs);
    const eph = msg
      ? undefined
      : ws.ephemeralList.find((e) => e.ts === input.messageTs && e.user === user.id && !e.deleted);
    if (!msg && !eph) throw new Error(`no message ${input.messageTs} in ${ch.id} visible to ${user.id}`);
    const blocks = (msg?.blocks ?? eph?.blocks ?? []) as Block[];
    const found = findActionElement(blocks, input.actionId, input.blockId);
    if (!found) throw new Error(`no element with action_id ${input.actionId} on message ${input.messageTs}`);
    const { block, element } = found;
    const action: Json = {
      action_id: input.actionId,
      block_id: block['block_id'],
      type: element['type'],
      action_ts: ws.nextTs(),
    };
    if (element['type'] === 'button') {
      action['text'] = element['text'];
      if (element['value'] !== undefined || input.value !== undefined)
        action['value'] = input.value ?? element['value'];
      if (element['style']) action['style'] = element['style'];
    } else if (Array.isArray(element['options'])) {
      const opt = (element['options'] as Json[]).find(
        (o) => o['value'] === (input.selectedValue ?? input.value),
      );
      action['selected_option'] = opt ?? null;
    }
    const threadTs = msg?.thread_ts ?? eph?.thread_ts;
    const responseUrl = ws.newResponseUrl({
      kind: 'action',
      channel: ch.id,
      user: user.id,
      messageTs: input.messageTs,
      ephemeral: !msg,
      ...(threadTs ? { threadTs } : {}),
    });
    const container: Json = {
      type: 'message',
      message_ts: input.messageTs,
      channel_id: ch.id,
      is_ephemeral: !msg,
    };
    if (threadTs) container['thread_ts'] = threadTs;
    const payload: Json = {
      type: 'block_actions',
      user: ws.userObj(user.id),
      api_app_id: ws.bot.appId,
      token: ws.verificationToken,
      container,
      trigger_id: ws.newTrigger(user.id, ch.id),
      team: { id: ws.team.id, domain: ws.team.domain },
      enterprise: null,
      is_enterprise_install: false,
      channel: { id: ch.id, name: ch.isIm ? 'directmessage' : ch.name },
      ...(msg ? { message: ws.publicMessage(msg) } : {}),
      state: { values: {} },
      response_url: responseUrl,
      actions: [action],
    };
    return this.deliverer.deliver('interactive', 'block_actions', payload, signing(input));
  }

  /** A user submits a modal: Slack sends `view_submission` with the inputs in `view.state.values`. */
  async submitView(input: SubmitViewInput): Promise<Delivery> {
    const ws = this.ws;
    const v = ws.viewMap.get(input.viewId);
    if (!v?.open) throw new Error(`view ${input.viewId} is not open`);
    v.state = { values: stateValues(v, input.values) };
    const payload: Json = {
      type: 'view_submission',
      team: { id: ws.team.id, domain: ws.team.domain },
      user: ws.userObj(input.userId),
      api_app_id: ws.bot.appId,
      token: ws.verificationToken,
      trigger_id: ws.newTrigger(input.userId),
      view: publicView(ws, v),
      response_urls: [],
      is_enterprise_install: false,
      enterprise: null,
    };
    const d = await this.deliverer.deliver('interactive', 'view_submission', payload, signing(input));
    this.afterViewSubmission(d, v);
    return d;
  }

  private afterViewSubmission(d: Delivery, v: StoredView): void {
    const ws = this.ws;
    if (!d.acked) {
      v.errors = { '': 'We had some trouble connecting. Try again?' };
      ws.changed({ type: 'view_updated', viewId: v.id, user: v.user });
      return;
    }
    const r = isObj(d.response) ? d.response : {};
    switch (r['response_action']) {
      case 'errors':
        v.errors = (isObj(r['errors']) ? r['errors'] : {}) as Record<string, string>;
        ws.changed({ type: 'view_updated', viewId: v.id, user: v.user });
        return;
      case 'update':
        if (isObj(r['view'])) replaceView(ws, v, r['view']);
        return;
      case 'push':
        if (isObj(r['view'])) {
          const stack = ws.modalStacks.get(v.user) ?? [];
          const nv = makeView(ws, r['view'], v.user, stack[0] ?? null, v.id, 'response_action');
          stack.push(nv.id);
          ws.modalStacks.set(v.user, stack);
          ws.changed({ type: 'view_opened', viewId: nv.id, user: v.user });
        }
        return;
      case 'clear':
        closeViews(ws, v.user, true);
        return;
      default:
        closeViews(ws, v.user, false);
    }
  }

  /** A user closes (cancels) a modal; sends `view_closed` when the view asked for notify_on_close. */
  async closeView(userId: string, viewId: string): Promise<Delivery | undefined> {
    const ws = this.ws;
    const v = ws.viewMap.get(viewId);
    if (!v?.open) return undefined;
    closeViews(ws, userId, false);
    if (!v.notify_on_close) return undefined;
    return this.deliverer.deliver('interactive', 'view_closed', {
      type: 'view_closed',
      team: { id: ws.team.id, domain: ws.team.domain },
      user: ws.userObj(userId),
      api_app_id: ws.bot.appId,
      token: ws.verificationToken,
      view: publicView(ws, v),
      is_cleared: false,
      is_enterprise_install: false,
      enterprise: null,
    });
  }

  /** A person posts a plain message (e.g. a thread reply); delivered as a `message` event. */
  async postAsUser(input: {
    userId: string;
    channelId: string;
    text: string;
    threadTs?: string;
  }): Promise<StoredMessage> {
    const ws = this.ws;
    const ch = ws.channelOrThrow(input.channelId);
    const threadTs = ws.threadParent(ch.id, input.threadTs);
    const m = ws.storeMessage(ws.userMessage(ch.id, input.userId, input.text, threadTs));
    if (this.reachable()) {
      const event: Json = {
        type: 'message',
        channel: ch.id,
        user: m.user,
        text: m.text,
        ts: m.ts,
        event_ts: m.ts,
        channel_type: ch.isIm ? 'im' : 'channel',
        team: ws.team.id,
      };
      if (threadTs) event['thread_ts'] = threadTs;
      void this.sendEvent(event);
    }
    return structuredClone(m);
  }

  /**
   * What Slack does when the Request URL is saved: a signed `url_verification` POST whose `challenge`
   * must be echoed back. Resolves true when the bot answered correctly.
   */
  async verifyUrl(): Promise<boolean> {
    const challenge = randomBytes(24).toString('base64url');
    const d = await this.deliverer.deliver('events_api', 'url_verification', {
      token: this.ws.verificationToken,
      challenge,
      type: 'url_verification',
    });
    const r = d.response;
    return d.status === 200 && (r === challenge || (isObj(r) && r['challenge'] === challenge));
  }

  /** Sends an Events API `event_callback` wrapping `event`. */
  sendEvent(event: Json): Promise<Delivery> {
    const ws = this.ws;
    return this.deliverer.deliver('events_api', 'event_callback', {
      token: ws.verificationToken,
      team_id: ws.team.id,
      api_app_id: ws.bot.appId,
      event,
      type: 'event_callback',
      event_id: `Ev${rand(10)}`,
      event_time: Math.floor(Date.now() / 1000),
      authorizations: [
        {
          enterprise_id: null,
          team_id: ws.team.id,
          user_id: ws.bot.userId,
          is_bot: true,
          is_enterprise_install: false,
        },
      ],
      is_ext_shared_channel: false,
      event_context: `4-${rand(20)}`,
    });
  }

  /**
   * Delivers a recorded delivery again as Slack's retries do: same payload, fresh signature, with
   * `x-slack-retry-num` / `x-slack-retry-reason` (HTTP) or `retry_attempt` / `retry_reason` (socket).
   */
  async redeliver(last: Delivery, opts: { retryNum?: number; reason?: string } = {}): Promise<Delivery> {
    const d = await this.deliverer.deliver(last.kind, last.payloadType, last.payload, {
      retryNum: opts.retryNum ?? last.retryNum + 1,
      retryReason: opts.reason ?? 'http_timeout',
    });
    if (last.kind === 'slash_commands') this.afterCommand(d);
    return d;
  }
}
