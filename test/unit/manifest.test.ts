// manifest.yml against Slack's published manifest JSON Schema (vendored, with
// its MIT licence, in test/fixtures/slack-manifest-schema), and against what
// Ferry's bot actually serves.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const schemaDir = path.join(repoRoot, 'test', 'fixtures', 'slack-manifest-schema');
const readJson = (name: string) => JSON.parse(readFileSync(path.join(schemaDir, name), 'utf8'));
const BASE = 'https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/';

function validator() {
  const ajv = new Ajv({ allErrors: true, strict: false });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  // Slack's schema uses a non-standard "regex" annotation next to "pattern".
  ajv.addKeyword({ keyword: 'regex', schemaType: 'string' });
  for (const v of ['1.0.0', '2.0.0'])
    ajv.addSchema(readJson(`manifest.schema.${v}.json`), `${BASE}manifest.schema.${v}.json`);
  return ajv.compile(readJson('manifest.schema.json'));
}

type Manifest = {
  features: { slash_commands: { command: string; description: string; usage_hint?: string; url?: string }[] };
  oauth_config: { scopes: { bot: string[] } };
  settings: { socket_mode_enabled: boolean; interactivity: { is_enabled: boolean; request_url?: string } };
};

const manifest = parse(readFileSync(path.join(repoRoot, 'manifest.yml'), 'utf8')) as Manifest;

describe('manifest.yml', () => {
  it("is valid against Slack's manifest schema", () => {
    const validate = validator();
    const ok = validate(manifest);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('the schema catches a broken manifest (the test is not vacuous)', () => {
    const validate = validator();
    const broken = structuredClone(manifest) as unknown as Record<string, unknown>;
    (broken['features'] as Manifest['features']).slash_commands[0] = { command: 'release', description: '' };
    expect(validate(broken)).toBe(false);
    expect(validate({ ...manifest, settings: { ...manifest.settings, surprise: true } })).toBe(false);
  });

  it('declares /release with a usage hint, interactivity and Socket Mode (no URLs)', () => {
    const cmd = manifest.features.slash_commands.find((c) => c.command === '/release');
    expect(cmd?.usage_hint).toBeTruthy();
    expect(cmd?.description).toBeTruthy();
    expect(manifest.settings.interactivity.is_enabled).toBe(true);
    expect(manifest.settings.socket_mode_enabled).toBe(true);
    // In Socket Mode Slack sends nothing to a URL; one given anyway would be a lie.
    expect(cmd?.url).toBeUndefined();
    expect(manifest.settings.interactivity.request_url).toBeUndefined();
  });

  it('asks for exactly the bot scopes Ferry uses', () => {
    expect([...manifest.oauth_config.scopes.bot].sort()).toEqual(['chat:write', 'commands', 'files:write']);
  });
});
