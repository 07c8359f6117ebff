// What deploy/overlays/local relies on when Ferry's pods share the node's
// network: a health server on a free port that says which (the exec probes
// read the file), and two bots on one port with SO_REUSEPORT.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import type { RunningBot } from '../../src/chat/slack/app.ts';
import { startSlackBot } from '../../src/cli/bot.ts';
import { Health, healthFromEnv } from '../../src/health.ts';
import { harness } from '../support/lifecycle.ts';
import { freePort, TestRedis } from '../support/redis.ts';

const saved = { ...process.env };
afterEach(() => {
  process.env = { ...saved };
});

describe('host network', () => {
  it('FERRY_HEALTH_PORT=0 serves on a free port and writes it to FERRY_HEALTH_PORT_FILE', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'health-port-'));
    const file = join(dir, 'health-port');
    process.env.FERRY_HEALTH_PORT = '0';
    process.env.FERRY_HEALTH_PORT_FILE = file;
    const servers = await Promise.all(
      [1, 2].map(() => healthFromEnv(new Health({ ready: [] }), 3199, () => {})),
    );
    try {
      const [a, b] = servers;
      expect(a?.port).toBeGreaterThan(0);
      expect(b?.port).not.toBe(a?.port);
      // the file names the last server started; each pod has its own /tmp
      const written = Number(readFileSync(file, 'utf8').trim());
      expect(servers.map((s) => s?.port)).toContain(written);
      const res = await fetch(`http://127.0.0.1:${written}/healthz`);
      expect(res.status).toBe(200);
    } finally {
      await Promise.all(servers.map((s) => s?.close()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('two bots with reusePort share one port; without it the port is refused', async () => {
    const redis = await TestRedis.start();
    const emu = await SlackEmulator.start({ signingSecret: 'reuse-secret', botToken: 'xoxb-reuse' });
    const port = await freePort();
    const hs = [harness(redis.url), harness(redis.url)];
    const bots: RunningBot[] = [];
    try {
      for (const h of hs)
        bots.push(
          await startSlackBot({
            runtime: h.rt,
            token: 'xoxb-reuse',
            signingSecret: 'reuse-secret',
            apiUrl: emu.apiUrl,
            port,
            reusePort: true,
            notifier: false,
          }),
        );
      expect(bots.map((b) => b.port)).toEqual([port, port]);
      // Without SO_REUSEPORT the same port is refused.
      await expect(
        startSlackBot({
          runtime: (hs[0] as (typeof hs)[number]).rt,
          token: 'xoxb-reuse',
          signingSecret: 'reuse-secret',
          apiUrl: emu.apiUrl,
          port,
          notifier: false,
        }),
      ).rejects.toThrow(/EADDRINUSE/);
    } finally {
      for (const b of bots) await b.stop();
      for (const h of hs) await h.close();
      await emu.close();
      await redis.stop();
    }
  });
});
