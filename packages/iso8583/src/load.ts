/**
 * Finding and loading specs: a built-in name (a file in the package's specs/ folder, found relative to
 * this module so it works from src/ under tsx and from dist/), a path to a JSON file, or an object.
 * Every spec is validated; compiled specs are cached per name and per path.
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Iso8583Error } from './errors.js';
import { CompiledSpec, compileSpec } from './message.js';

/** The package's specs/ folder: one level above src/ and dist/. */
const SPECS_DIR = fileURLToPath(new URL('../specs/', import.meta.url));
const cache = new Map<string, CompiledSpec>();

/** Names of the built-in specs (files in specs/). */
export function listSpecs(): string[] {
  if (!existsSync(SPECS_DIR)) return [];
  return readdirSync(SPECS_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();
}

function readJson(path: string, label: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new Iso8583Error('ISO8583_SPEC_NOT_FOUND', label, 'no spec file can be read there');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new Iso8583Error('ISO8583_SPEC_INVALID', '$', `${label} is not valid JSON`);
  }
}

/**
 * Load a spec: `loadSpec('iso87-binary')` (built-in), `loadSpec('./my-dialect.json')` (a path: anything
 * with a slash or ending in .json), `loadSpec(object)` (a parsed spec), or a CompiledSpec (returned as is).
 */
export function loadSpec(spec: string | object | CompiledSpec): CompiledSpec {
  if (spec instanceof CompiledSpec) return spec;
  if (typeof spec !== 'string') return compileSpec(spec);
  const hit = cache.get(spec);
  if (hit) return hit;
  let compiled: CompiledSpec;
  if (spec.includes('/') || spec.includes('\\') || spec.endsWith('.json')) {
    compiled = compileSpec(readJson(spec, spec));
  } else {
    if (!/^[A-Za-z0-9._-]+$/.test(spec) || !listSpecs().includes(spec))
      throw new Iso8583Error(
        'ISO8583_SPEC_NOT_FOUND',
        spec,
        `no built-in spec has this name (${listSpecs().join(', ')})`,
      );
    compiled = compileSpec(readJson(`${SPECS_DIR}${spec}.json`, spec));
  }
  cache.set(spec, compiled);
  return compiled;
}
