// What goes into a namespace's pull secret: the region registry's credentials,
// from the variable the config names.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { dockerConfigJson, regionPullCredentials } from '../../src/kube/pull-secrets.ts';
import { EXAMPLE_CONFIG_PATH } from '../support/config.ts';

const example = readFileSync(EXAMPLE_CONFIG_PATH, 'utf8');

function configWithEuWestCredentials() {
  const text = example.replace(
    'registry: { url: http://127.0.0.1:5001, insecure: true }',
    'registry: { url: http://127.0.0.1:5001, insecure: true, username: robot$pull, passwordEnv: EU_WEST_REGISTRY_PASSWORD }',
  );
  expect(text).not.toBe(example);
  const r = parseConfig(text);
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.config;
}

describe('pull secrets', () => {
  it('a region whose registry has a user pulls with it; one without has no pull secret', () => {
    const config = configWithEuWestCredentials();
    const env = { EU_WEST_REGISTRY_PASSWORD: 'p4ss' };
    expect(regionPullCredentials(config, 'eu-west', env)).toEqual([
      { server: '127.0.0.1:5001', username: 'robot$pull', password: 'p4ss' },
    ]);
    expect(regionPullCredentials(config, 'us-east', env)).toEqual([]);
  });

  it('a password variable that is not set is named, with no value in the message', () => {
    const config = configWithEuWestCredentials();
    expect(() => regionPullCredentials(config, 'eu-west', {})).toThrow(
      'registry of eu-west (127.0.0.1:5001): no password for user "robot$pull"; $EU_WEST_REGISTRY_PASSWORD is not set',
    );
  });

  it('the docker config holds user, password and their basic-auth form, the same bytes for the same credentials', () => {
    const a = dockerConfigJson([
      { server: 'b.example:5000', username: 'u2', password: 'p2' },
      { server: 'a.example', username: 'u1', password: 'p1' },
    ]);
    const b = dockerConfigJson([
      { server: 'a.example', username: 'u1', password: 'p1' },
      { server: 'b.example:5000', username: 'u2', password: 'p2' },
    ]);
    expect(a).toBe(b);
    const parsed = JSON.parse(a) as {
      auths: Record<string, { username: string; password: string; auth: string }>;
    };
    expect(parsed.auths['a.example']).toEqual({
      username: 'u1',
      password: 'p1',
      auth: Buffer.from('u1:p1').toString('base64'),
    });
    expect(Object.keys(parsed.auths)).toEqual(['a.example', 'b.example:5000']);
  });
});
