// Block Kit validation with Slack's documented limits, reporting errors the way the Web API does:
// `errors: ['must be less than 51 items [json-pointer:/blocks]']` on `invalid_blocks`.
import { randomBytes } from 'node:crypto';

export const LIMITS = {
  messageBlocks: 50,
  modalBlocks: 100,
  sectionText: 3000,
  sectionFields: 10,
  fieldText: 2000,
  headerText: 150,
  contextElements: 10,
  actionsElements: 25,
  buttonText: 75,
  buttonValue: 2000,
  buttonUrl: 3000,
  id: 255,
  markdownText: 12000,
  imageUrl: 3000,
  altText: 2000,
  inputLabel: 2000,
  placeholder: 150,
  optionText: 75,
  options: 100,
  viewTitle: 24,
  privateMetadata: 3000,
  callbackId: 255,
  messageText: 40000,
} as const;

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export function randomBlockId(): string {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(5);
  return Array.from(bytes, (b) => abc[b % abc.length]).join('');
}

class Collector {
  readonly errors: string[] = [];
  add(msg: string, pointer: string): void {
    this.errors.push(`${msg} [json-pointer:${pointer}]`);
  }
  maxLen(v: unknown, max: number, p: string): void {
    if (typeof v === 'string' && v.length > max) this.add(`must be less than ${max + 1} characters`, p);
  }
  minLen(v: unknown, p: string): void {
    if (typeof v !== 'string') this.add('must provide a string', p);
    else if (v.length === 0) this.add('must be more than 0 characters', p);
  }
  maxItems(v: unknown[], max: number, p: string): void {
    if (v.length > max) this.add(`must be less than ${max + 1} items`, p);
  }
}

function textObject(
  c: Collector,
  t: unknown,
  p: string,
  max: number,
  kinds: ReadonlyArray<'plain_text' | 'mrkdwn'> = ['plain_text', 'mrkdwn'],
): void {
  if (!isObj(t)) {
    c.add('must provide an object', p);
    return;
  }
  if (t['type'] !== 'plain_text' && t['type'] !== 'mrkdwn') {
    c.add(`must be one of ${kinds.join(', ')}`, `${p}/type`);
    return;
  }
  if (!kinds.includes(t['type'])) c.add(`must be a ${kinds.join(' or ')} text object`, `${p}/type`);
  c.minLen(t['text'], `${p}/text`);
  c.maxLen(t['text'], max, `${p}/text`);
}

function checkId(c: Collector, v: unknown, p: string): void {
  if (v === undefined) return;
  if (typeof v !== 'string') c.add('must provide a string', p);
  else if (v.length === 0) c.add('must be more than 0 characters', p);
  else c.maxLen(v, LIMITS.id, p);
}

function option(c: Collector, o: unknown, p: string): void {
  if (!isObj(o)) {
    c.add('must provide an object', p);
    return;
  }
  textObject(c, o['text'], `${p}/text`, LIMITS.optionText);
  c.minLen(o['value'], `${p}/value`);
  c.maxLen(o['value'], 150, `${p}/value`);
}

function element(c: Collector, e: unknown, p: string, actionIds: Set<string>): void {
  if (!isObj(e)) {
    c.add('must provide an object', p);
    return;
  }
  const type = e['type'];
  checkId(c, e['action_id'], `${p}/action_id`);
  if (typeof e['action_id'] === 'string') {
    if (actionIds.has(e['action_id']))
      c.add(`action_id "${e['action_id']}" is already used`, `${p}/action_id`);
    actionIds.add(e['action_id']);
  }
  switch (type) {
    case 'button':
      textObject(c, e['text'], `${p}/text`, LIMITS.buttonText, ['plain_text']);
      if (e['value'] !== undefined) c.maxLen(e['value'], LIMITS.buttonValue, `${p}/value`);
      if (e['url'] !== undefined) c.maxLen(e['url'], LIMITS.buttonUrl, `${p}/url`);
      if (e['style'] !== undefined && e['style'] !== 'primary' && e['style'] !== 'danger') {
        c.add('must be one of primary, danger', `${p}/style`);
      }
      if (e['confirm'] !== undefined && !isObj(e['confirm'])) c.add('must provide an object', `${p}/confirm`);
      return;
    case 'plain_text_input':
      if (e['placeholder'] !== undefined)
        textObject(c, e['placeholder'], `${p}/placeholder`, LIMITS.placeholder);
      if (e['max_length'] !== undefined && (typeof e['max_length'] !== 'number' || e['max_length'] > 3000)) {
        c.add('must be less than 3001', `${p}/max_length`);
      }
      return;
    case 'static_select':
    case 'multi_static_select':
    case 'radio_buttons':
    case 'checkboxes':
    case 'overflow': {
      const opts = e['options'];
      if (!Array.isArray(opts)) {
        if (!Array.isArray(e['option_groups'])) c.add('must provide an array', `${p}/options`);
        return;
      }
      c.maxItems(
        opts,
        type === 'overflow' ? 5 : type === 'radio_buttons' || type === 'checkboxes' ? 10 : 100,
        `${p}/options`,
      );
      opts.forEach((o, i) => {
        option(c, o, `${p}/options/${i}`);
      });
      if (e['placeholder'] !== undefined)
        textObject(c, e['placeholder'], `${p}/placeholder`, LIMITS.placeholder, ['plain_text']);
      return;
    }
    case 'image':
      c.minLen(e['alt_text'], `${p}/alt_text`);
      c.maxLen(e['alt_text'], LIMITS.altText, `${p}/alt_text`);
      if (e['image_url'] === undefined && e['slack_file'] === undefined)
        c.add('must provide image_url or slack_file', p);
      else c.maxLen(e['image_url'], LIMITS.imageUrl, `${p}/image_url`);
      return;
    case 'plain_text':
    case 'mrkdwn':
      c.minLen(e['text'], `${p}/text`);
      c.maxLen(e['text'], LIMITS.sectionText, `${p}/text`);
      return;
    case 'users_select':
    case 'conversations_select':
    case 'channels_select':
    case 'multi_users_select':
    case 'multi_conversations_select':
    case 'multi_channels_select':
    case 'external_select':
    case 'multi_external_select':
    case 'datepicker':
    case 'timepicker':
    case 'datetimepicker':
    case 'number_input':
    case 'email_text_input':
    case 'url_text_input':
    case 'rich_text_input':
    case 'file_input':
    case 'workflow_button':
      return;
    default:
      c.add(`unsupported type: ${String(type)}`, `${p}/type`);
  }
}

export type Surface = 'message' | 'modal' | 'home';

/** Validates blocks in place and returns Slack-style error strings (empty when valid). */
export function validateBlocks(blocks: unknown, surface: Surface = 'message'): string[] {
  const c = new Collector();
  if (!Array.isArray(blocks)) {
    c.add('must provide an array', '/blocks');
    return c.errors;
  }
  c.maxItems(blocks, surface === 'message' ? LIMITS.messageBlocks : LIMITS.modalBlocks, '/blocks');
  const blockIds = new Set<string>();
  blocks.forEach((b, i) => {
    const p = `/blocks/${i}`;
    if (!isObj(b)) {
      c.add('must provide an object', p);
      return;
    }
    checkId(c, b['block_id'], `${p}/block_id`);
    if (typeof b['block_id'] === 'string') {
      if (blockIds.has(b['block_id'])) c.add(`duplicate block_id "${b['block_id']}"`, `${p}/block_id`);
      blockIds.add(b['block_id']);
    }
    const actionIds = new Set<string>();
    switch (b['type']) {
      case 'section': {
        if (b['text'] === undefined && b['fields'] === undefined) {
          c.add('must define either `text` or `fields`', p);
        }
        if (b['text'] !== undefined) textObject(c, b['text'], `${p}/text`, LIMITS.sectionText);
        if (b['fields'] !== undefined) {
          if (!Array.isArray(b['fields'])) c.add('must provide an array', `${p}/fields`);
          else {
            c.maxItems(b['fields'], LIMITS.sectionFields, `${p}/fields`);
            b['fields'].forEach((f, j) => {
              textObject(c, f, `${p}/fields/${j}`, LIMITS.fieldText);
            });
          }
        }
        if (b['accessory'] !== undefined) element(c, b['accessory'], `${p}/accessory`, actionIds);
        return;
      }
      case 'header':
        textObject(c, b['text'], `${p}/text`, LIMITS.headerText, ['plain_text']);
        return;
      case 'divider':
        return;
      case 'context': {
        const els = b['elements'];
        if (!Array.isArray(els)) {
          c.add('must provide an array', `${p}/elements`);
          return;
        }
        if (els.length === 0) c.add('must provide at least 1 item', `${p}/elements`);
        c.maxItems(els, LIMITS.contextElements, `${p}/elements`);
        els.forEach((e, j) => {
          if (isObj(e) && e['type'] !== 'image' && e['type'] !== 'plain_text' && e['type'] !== 'mrkdwn') {
            c.add(`unsupported type: ${String(e['type'])}`, `${p}/elements/${j}/type`);
          } else element(c, e, `${p}/elements/${j}`, actionIds);
        });
        return;
      }
      case 'actions': {
        const els = b['elements'];
        if (!Array.isArray(els)) {
          c.add('must provide an array', `${p}/elements`);
          return;
        }
        if (els.length === 0) c.add('must provide at least 1 item', `${p}/elements`);
        c.maxItems(els, LIMITS.actionsElements, `${p}/elements`);
        els.forEach((e, j) => {
          element(c, e, `${p}/elements/${j}`, actionIds);
        });
        return;
      }
      case 'image':
        c.minLen(b['alt_text'], `${p}/alt_text`);
        c.maxLen(b['alt_text'], LIMITS.altText, `${p}/alt_text`);
        if (b['image_url'] === undefined && b['slack_file'] === undefined)
          c.add('must provide image_url or slack_file', p);
        else c.maxLen(b['image_url'], LIMITS.imageUrl, `${p}/image_url`);
        if (b['title'] !== undefined) textObject(c, b['title'], `${p}/title`, 2000, ['plain_text']);
        return;
      case 'markdown':
        c.minLen(b['text'], `${p}/text`);
        c.maxLen(b['text'], LIMITS.markdownText, `${p}/text`);
        return;
      case 'input':
        textObject(c, b['label'], `${p}/label`, LIMITS.inputLabel, ['plain_text']);
        if (b['hint'] !== undefined) textObject(c, b['hint'], `${p}/hint`, 2000, ['plain_text']);
        if (b['element'] === undefined) c.add('must provide an object', `${p}/element`);
        else element(c, b['element'], `${p}/element`, actionIds);
        return;
      case 'rich_text':
        if (!Array.isArray(b['elements'])) c.add('must provide an array', `${p}/elements`);
        return;
      case 'file':
      case 'video':
      case 'table':
      case 'context_actions':
        return;
      default:
        c.add(`unsupported type: ${String(b['type'])}`, `${p}/type`);
    }
  });
  return c.errors;
}

/** Fills in `block_id` (and button `action_id`) where missing, as Slack does when it stores a message. */
export function normalizeBlocks(blocks: unknown[]): Json[] {
  return blocks.map((raw) => {
    const b: Json = structuredClone(raw as Json);
    if (b['block_id'] === undefined) b['block_id'] = randomBlockId();
    const fill = (e: unknown): void => {
      if (isObj(e) && typeof e['type'] === 'string' && e['action_id'] === undefined) {
        if (e['type'] !== 'plain_text' && e['type'] !== 'mrkdwn' && e['type'] !== 'image')
          e['action_id'] = randomBlockId();
      }
    };
    if (Array.isArray(b['elements']) && b['type'] === 'actions') b['elements'].forEach(fill);
    if (b['accessory'] !== undefined) fill(b['accessory']);
    if (b['element'] !== undefined) fill(b['element']);
    return b;
  });
}

/** Validates a modal view object (views.open / views.update / views.push). */
export function validateView(view: unknown): string[] {
  const c = new Collector();
  if (!isObj(view)) {
    c.add('must provide an object', '/view');
    return c.errors;
  }
  if (view['type'] !== 'modal' && view['type'] !== 'home') c.add('must be one of modal, home', '/view/type');
  if (view['type'] === 'modal') {
    textObject(c, view['title'], '/view/title', LIMITS.viewTitle, ['plain_text']);
    if (view['submit'] !== undefined)
      textObject(c, view['submit'], '/view/submit', LIMITS.viewTitle, ['plain_text']);
    if (view['close'] !== undefined)
      textObject(c, view['close'], '/view/close', LIMITS.viewTitle, ['plain_text']);
    const hasInput =
      Array.isArray(view['blocks']) && view['blocks'].some((b) => isObj(b) && b['type'] === 'input');
    if (hasInput && view['submit'] === undefined)
      c.add('must provide submit when input blocks are present', '/view/submit');
  }
  c.maxLen(view['private_metadata'], LIMITS.privateMetadata, '/view/private_metadata');
  c.maxLen(view['callback_id'], LIMITS.callbackId, '/view/callback_id');
  const errs = validateBlocks(view['blocks'], view['type'] === 'home' ? 'home' : 'modal').map((e) =>
    e.replace('[json-pointer:/blocks', '[json-pointer:/view/blocks'),
  );
  return [...c.errors, ...errs];
}
