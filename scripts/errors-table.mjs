#!/usr/bin/env node
// Prints a markdown table of every package's error codes (from the built dist), to paste into docs/errors.md.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = new URL('..', import.meta.url).pathname;
for (const p of readdirSync(join(root, 'packages')).sort()) {
  const entry = join(root, 'packages', p, 'dist', 'index.js');
  if (!existsSync(entry)) continue;
  const mod = await import(pathToFileURL(entry).href);
  for (const [name, value] of Object.entries(mod)) {
    if (!name.endsWith('_ERROR_CODES')) continue;
    console.log(`\n## @openposp/${p}\n\n| code | meaning |\n|---|---|`);
    for (const [code, meaning] of Object.entries(value)) console.log(`| \`${code}\` | ${meaning} |`);
  }
}
