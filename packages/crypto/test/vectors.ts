/** Loads the published test vectors (vectors/*.json); each vector carries its source clause. */
import { readdirSync, readFileSync } from 'node:fs';

export interface Vector {
  id: number | string;
  op: string;
  source: string;
  expected: Record<string, unknown>;
  [k: string]: unknown;
}

const dir = new URL('../vectors/', import.meta.url);

let cache: Vector[] | undefined;

/** Every vector in every JSON file of vectors/ (a file is an array of vectors, or `{ vectors: [...] }`). */
export function allVectors(): Vector[] {
  if (cache) return cache;
  const out: Vector[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith('.json')) continue;
    const parsed = JSON.parse(readFileSync(new URL(name, dir), 'utf8')) as Vector[] | { vectors: Vector[] };
    const list = Array.isArray(parsed) ? parsed : parsed.vectors;
    for (const v of list) {
      if (typeof v.source !== 'string' || v.source.length === 0)
        throw new Error(`${name}: vector ${v.id} has no source`);
      out.push(v);
    }
  }
  cache = out;
  return out;
}

export function vectors(op: string): Vector[] {
  const list = allVectors().filter((v) => v.op === op);
  if (list.length === 0) throw new Error(`no vectors for op ${op}`);
  return list;
}

/** A short test name: op, id and the source. */
export function label(v: Vector): string {
  return `#${v.id} ${v.source}`;
}
