// Pins the node agent's image (deploy/agent/daemonset.yaml) to the digest the
// registry serves for a tag. Run after pushing a new Ferry image:
//
//   node scripts/pin-agent-image.ts registry.example.com/ferry/ferry:0.2.0
//   node scripts/pin-agent-image.ts 127.0.0.1:5000/ferry/ferry:dev --url http://127.0.0.1:5000
//
// REGISTRY_USERNAME / REGISTRY_PASSWORD authenticate when the registry needs it.
import { parseArgs } from 'node:util';
import { pinImageInFile } from '../src/registry/pin-image.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    file: { type: 'string', default: 'deploy/agent/daemonset.yaml' },
    container: { type: 'string', default: 'agent' },
  },
});
const reference = positionals[0];
if (!reference) {
  console.error(
    'usage: node scripts/pin-agent-image.ts <registry>/<repo>:<tag> [--url <registry url>] [--file <yaml>]',
  );
  process.exit(2);
}
const host = reference.split('/')[0] as string;
const pinned = await pinImageInFile(values.file as string, values.container as string, reference, {
  name: host,
  url: values.url ?? `https://${host}`,
  ...(process.env.REGISTRY_USERNAME ? { username: process.env.REGISTRY_USERNAME } : {}),
  ...(process.env.REGISTRY_PASSWORD ? { password: process.env.REGISTRY_PASSWORD } : {}),
});
console.log(`${values.file}: image ${pinned.image}`);
