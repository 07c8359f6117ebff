// The command list is derived from commands/<name>.ts: every command has its
// help and its permission, the domain's reserved words are exactly the
// registry's, and the help names each command once and never every app.
import { describe, expect, it } from 'vitest';
import type { CommandPorts } from '../../commands/command.ts';
import { handleCommand } from '../../commands/handle.ts';
import { COMMAND_LIST, COMMANDS, parseCommand } from '../../commands/index.ts';
import type { FerryConfig } from '../../src/domain/config.ts';
import { SUBCOMMANDS } from '../../src/domain/words.ts';
import { exampleConfig } from '../support/config.ts';

const alice = { userId: 'U_ALICE', channel: 'C1' };

function withApps(n: number): FerryConfig {
  const config = exampleConfig();
  const template = Object.values(config.apps)[0] as FerryConfig['apps'][string];
  for (let i = 0; i < n; i++) config.apps[`svc-${String(i).padStart(4, '0')}`] = template;
  return config;
}

const portsOf = (config: FerryConfig) => ({ config: () => config }) as CommandPorts;

describe('the command registry', () => {
  it('holds one module per word of the grammar, and the bare release', () => {
    expect(Object.keys(COMMANDS).sort()).toEqual([...SUBCOMMANDS, 'release'].sort());
    for (const [key, module] of Object.entries(COMMANDS)) expect(module.name).toBe(key);
  });

  it('gives every command a usage, a summary, a permission and a handler', () => {
    for (const c of COMMAND_LIST) {
      expect(c.usage, c.name).toMatch(/^\/release /);
      expect(c.summary.length, c.name).toBeGreaterThan(10);
      expect(['anyone', 'action', 'release'], c.name).toContain(c.permission.kind);
      if (c.permission.kind === 'anyone') expect(c.permission.why.length).toBeGreaterThan(0);
      expect(typeof c.handle, c.name).toBe('function');
    }
    // What changes something is never open to anyone.
    for (const name of [
      'release',
      'rollback',
      'sync',
      'logs',
      'approve',
      'reject',
      'pause',
      'abort',
      'adopt',
    ])
      expect(COMMANDS[name as keyof typeof COMMANDS].permission.kind, name).not.toBe('anyone');
  });

  it('the help lists each command once, and with 9,000 apps names none of them', async () => {
    const config = withApps(9000);
    const reply = await handleCommand({ kind: 'help' }, alice, portsOf(config));
    expect(reply.ok).toBe(true);
    for (const c of COMMAND_LIST) {
      const line = `\`${c.usage.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')}\``;
      expect(reply.text.split(line).length - 1, c.name).toBe(1);
    }
    expect(reply.text).not.toContain('svc-0001');
    expect(reply.text).toContain('9');
    expect(reply.text).toMatch(/9\d{3} apps: `\/release apps (<|&lt;)prefix(>|&gt;)` finds them/);
    expect(reply.text.length).toBeLessThan(4000);
  });

  it('a permission of kind "action" is checked by the domain policy before the handler runs', async () => {
    const config = exampleConfig();
    let queued = 0;
    const ports = {
      config: () => config,
      operations: {
        enqueue: async () => {
          queued++;
          return 'op-1';
        },
      },
      rollbacks: { check: async () => undefined },
    } as unknown as CommandPorts;
    const app = Object.keys(config.apps)[0] as string;
    const refused = await handleCommand(
      { kind: 'rollback', app },
      { userId: 'U_NOBODY', channel: 'C' },
      ports,
    );
    expect(refused.ok).toBe(false);
    expect(refused.text).toMatch(/not in Ferry's people list/);
    expect(queued).toBe(0);
  });
});

describe('/release apps', () => {
  it('lists the apps starting with a prefix, at most a page, and counts the rest', async () => {
    const config = withApps(9000);
    const parsed = parseCommand('/release apps svc-01', { config });
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    const reply = await handleCommand(parsed.command, alice, portsOf(config));
    // svc-0100 … svc-0199: 100 names, 50 shown.
    expect(reply.text).toMatch(/^100 apps starting with "svc-01": svc-0100, svc-0101,/);
    expect(reply.text).toContain('svc-0149');
    expect(reply.text).not.toContain('svc-0150');
    expect(reply.text).toMatch(/and 50 more/);
    const none = await handleCommand({ kind: 'apps', prefix: 'zzz' }, alice, portsOf(config));
    expect(none.text).toBe('No app starting with "zzz".');
  });
});
