// The console page is plain HTML + JS in console.html (no build step), read on each request so it can be
// edited while the emulator runs.
import { readFileSync } from 'node:fs';

const PAGE = new URL('./console.html', import.meta.url);

export function consoleHtml(): string {
  return readFileSync(PAGE, 'utf8');
}
