#!/usr/bin/env node
// Runs every package's tests and the repository-level tests with node:test.
// Node 20's `--test` takes no globs, so the files are listed here. Test files
// are TypeScript run through the tsx loader; packages are imported from their
// built `dist` (the `test` script builds first). A test that leaves a handle open cannot hang
// the run (--test-force-exit), and no single test runs longer than 2 minutes.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (/\.test\.(ts|mjs)$/.test(name)) out.push(relative(root, p));
  }
  return out;
}

const only = process.argv.slice(2);
const files = walk(join(root, 'packages'), walk(join(root, 'test'), []))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-reporter=spec',
    '--test-force-exit',
    '--test-timeout=120000',
    ...files,
  ],
  {
    cwd: root,
    stdio: 'inherit',
  },
);
process.exit(r.status ?? 1);
