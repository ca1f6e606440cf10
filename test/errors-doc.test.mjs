// docs/errors.md lists every error code every package throws, and only those: each package
// exports its codes as `<NAME>_ERROR_CODES`; this test fails when code and document disagree.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

const root = new URL('..', import.meta.url).pathname;

test('docs/errors.md and the packages list the same error codes', async () => {
  const inCode = new Set();
  for (const p of readdirSync(join(root, 'packages'))) {
    const entry = join(root, 'packages', p, 'dist', 'index.js');
    if (!existsSync(entry)) continue;
    const mod = await import(pathToFileURL(entry).href);
    for (const [name, value] of Object.entries(mod)) {
      if (name.endsWith('_ERROR_CODES')) for (const code of Object.keys(value)) inCode.add(code);
    }
  }
  assert.ok(inCode.size > 0, 'no *_ERROR_CODES exported: build first (npm run build)');
  const doc = readFileSync(join(root, 'docs', 'errors.md'), 'utf8');
  const inDoc = new Set([...doc.matchAll(/^\|\s*`([A-Z0-9_]+)`\s*\|/gm)].map((m) => m[1]));
  const missingFromDoc = [...inCode].filter((c) => !inDoc.has(c)).sort();
  const notInCode = [...inDoc].filter((c) => !inCode.has(c)).sort();
  assert.deepEqual({ missingFromDoc, notInCode }, { missingFromDoc: [], notInCode: [] });
});
