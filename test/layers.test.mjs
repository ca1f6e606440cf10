// Fails when a package imports against the layer direction:
//   crypto <- iso8583 <- hsm, store, net, testkit <- terminal, acquirer, switch, issuer, mpos, cloudpos <- cli, web, sim
// A package may import only packages of a lower layer, so services never import each other: they
// talk ISO 8583 over TCP and reach the HSM through its client. Checked on package.json
// dependencies and on every import in src/ (static, dynamic, and relative paths that leave the package).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const LAYERS = {
  crypto: 0,
  iso8583: 1,
  hsm: 2,
  store: 2,
  testkit: 2,
  net: 2,
  terminal: 3,
  acquirer: 3,
  switch: 3,
  issuer: 3,
  mpos: 3,
  cloudpos: 3,
  recon: 3,
  cli: 4,
  web: 4,
  sim: 4,
};

const root = new URL('..', import.meta.url).pathname;
const pkgsDir = join(root, 'packages');
const packages = readdirSync(pkgsDir).filter((d) => existsSync(join(pkgsDir, d, 'package.json')));

function sources(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (/\.(ts|mts|js|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

/** Returns the list of violations for package `pkg` whose files import `specifiers`. */
export function violations(pkg, imports) {
  const mine = LAYERS[pkg];
  const out = [];
  for (const { file, spec } of imports) {
    const m = /^@openposp\/([^/]+)/.exec(spec);
    if (!m) continue;
    const dep = m[1];
    if (!(dep in LAYERS)) out.push(`${file}: imports unknown package @openposp/${dep}`);
    else if (LAYERS[dep] >= mine)
      out.push(`${file}: ${pkg} (layer ${mine}) must not import ${dep} (layer ${LAYERS[dep]})`);
  }
  return out;
}

const IMPORT_RE =
  /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;

test('every package has a known layer', () => {
  for (const p of packages) assert.ok(p in LAYERS, `packages/${p} has no layer in test/layers.test.mjs`);
});

test('package.json dependencies follow the layer direction', () => {
  const bad = [];
  for (const p of packages) {
    const pj = JSON.parse(readFileSync(join(pkgsDir, p, 'package.json'), 'utf8'));
    const deps = { ...pj.dependencies, ...pj.devDependencies, ...pj.peerDependencies };
    bad.push(
      ...violations(
        p,
        Object.keys(deps).map((spec) => ({ file: `packages/${p}/package.json`, spec })),
      ),
    );
  }
  assert.deepEqual(bad, []);
});

test('imports in src follow the layer direction and stay inside their package', () => {
  const bad = [];
  for (const p of packages) {
    const imports = [];
    for (const file of sources(join(pkgsDir, p, 'src'))) {
      const text = readFileSync(file, 'utf8');
      const rel = file.slice(root.length);
      for (const m of text.matchAll(IMPORT_RE)) {
        const spec = m[1] ?? m[2] ?? m[3];
        imports.push({ file: rel, spec });
        if (spec.startsWith('.')) {
          const target = join(file, '..', spec);
          if (!target.startsWith(join(pkgsDir, p)))
            bad.push(`${rel}: relative import ${spec} leaves packages/${p}`);
        }
      }
    }
    bad.push(...violations(p, imports));
  }
  assert.deepEqual(bad, []);
});

test('the checker itself catches a service importing another service and crypto importing upward', () => {
  assert.equal(violations('acquirer', [{ file: 'x.ts', spec: '@openposp/issuer' }]).length, 1);
  assert.equal(violations('crypto', [{ file: 'x.ts', spec: '@openposp/iso8583/spec' }]).length, 1);
  assert.equal(violations('cli', [{ file: 'x.ts', spec: '@openposp/crypto' }]).length, 0);
});
