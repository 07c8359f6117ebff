// The node agent's image is pinned by digest: the committed DaemonSet names no
// moving tag, and scripts/pin-agent-image.ts writes the digest a real registry
// serves for a tag (and follows when the tag is pushed again).
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { RegistryClient } from '../../src/registry/client.ts';
import {
  buildImage,
  pushImage,
  randomLayer,
  type StartedRegistry,
  startRegistry,
} from '../support/registry.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const DAEMONSET = join(ROOT, 'deploy/agent/daemonset.yaml');

type Container = { name: string; image: string };
async function containers(file: string): Promise<Container[]> {
  const docs = parseAllDocuments(await readFile(file, 'utf8')).map((d) => d.toJSON());
  return docs
    .filter((d) => d?.kind === 'DaemonSet')
    .flatMap((d) => d.spec.template.spec.containers as Container[]);
}

let reg: StartedRegistry;
beforeAll(async () => {
  reg = await startRegistry();
}, 60_000);
afterAll(async () => {
  await reg?.stop();
});

describe('node agent image', () => {
  it('the committed DaemonSet pins every image by sha256 digest', async () => {
    const cs = await containers(DAEMONSET);
    expect(cs.length).toBeGreaterThan(0);
    for (const c of cs) {
      expect(c.image).toMatch(/@sha256:[a-f0-9]{64}$/);
      expect(c.image).not.toMatch(/:latest(@|$)/);
    }
  });

  it('pin-agent-image writes the digest the registry serves for the tag, and only that line', async () => {
    const work = await mkdtemp(join(tmpdir(), 'ferry-pin-'));
    const file = join(work, 'daemonset.yaml');
    await copyFile(DAEMONSET, file);
    const host = new URL(reg.url).host;
    const client = new RegistryClient({ name: 'pin', url: reg.url });
    const run = () =>
      promisify(execFile)(
        process.execPath,
        ['scripts/pin-agent-image.ts', `${host}/ferry/ferry:0.1.0`, '--url', reg.url, '--file', file],
        { cwd: ROOT },
      );

    const first = await pushImage(client, 'ferry/ferry', '0.1.0', buildImage([randomLayer(4096, 'one')]));
    await run();
    expect((await containers(file)).map((c) => c.image)).toEqual([`${host}/ferry/ferry:0.1.0@${first}`]);

    // The tag moves: the file keeps the old digest until pinned again, then follows.
    const second = await pushImage(client, 'ferry/ferry', '0.1.0', buildImage([randomLayer(4096, 'two')]));
    expect(second).not.toBe(first);
    expect((await containers(file))[0]?.image).toContain(first);
    await run();
    expect((await containers(file))[0]?.image).toBe(`${host}/ferry/ferry:0.1.0@${second}`);

    const before = (await readFile(DAEMONSET, 'utf8')).split('\n');
    const after = (await readFile(file, 'utf8')).split('\n');
    expect(after.length).toBe(before.length);
    expect(after.filter((l, i) => l !== before[i])).toEqual([
      `          image: ${host}/ferry/ferry:0.1.0@${second}`,
    ]);
  });
});
