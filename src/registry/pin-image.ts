// Pins a Kubernetes manifest's image to the digest the registry serves for a
// tag, so every node runs the same bytes and a re-pushed tag changes nothing
// until someone pins again (a `:latest` image would differ from node to node
// as they pull at different times). Used for the node agent's DaemonSet:
//   node scripts/pin-agent-image.ts <registry>/<repo>:<tag> [--url https://…] [--file …]
import { readFile, writeFile } from 'node:fs/promises';
import { formatReference, parseReference, RegistryClient, type RegistryEndpoint } from './client.ts';

export interface PinResult {
  image: string;
  digest: string;
}

/** The digest the registry serves for `reference` (a tag), read from the registry itself. */
export async function resolveDigest(reference: string, endpoint?: RegistryEndpoint): Promise<PinResult> {
  const ref = parseReference(reference);
  if (!ref.tag) throw new Error(`${reference}: give a tag to pin (e.g. ${reference}:0.1.0)`);
  const client = new RegistryClient(endpoint ?? { name: ref.registry, url: `https://${ref.registry}` });
  const manifest = await client.getManifest(ref.repository, ref.tag);
  return { image: formatReference({ ...ref, digest: manifest.digest }), digest: manifest.digest };
}

/**
 * Rewrites the `image:` line of container `container` in a YAML manifest (text edit, so comments and
 * layout stay) and returns the new image reference.
 */
export async function pinImageInFile(
  file: string,
  container: string,
  reference: string,
  endpoint?: RegistryEndpoint,
): Promise<PinResult> {
  const pinned = await resolveDigest(reference, endpoint);
  const lines = (await readFile(file, 'utf8')).split('\n');
  const start = lines.findIndex((l) => new RegExp(`^\\s*-\\s*name:\\s*${container}\\s*$`).test(l));
  if (start < 0) throw new Error(`${file}: no container named ${container}`);
  const at = lines.findIndex((l, i) => i > start && /^\s*image:\s*\S+/.test(l));
  if (at < 0) throw new Error(`${file}: container ${container} has no image line`);
  lines[at] = (lines[at] as string).replace(/image:\s*\S+/, `image: ${pinned.image}`);
  await writeFile(file, lines.join('\n'));
  return pinned;
}
