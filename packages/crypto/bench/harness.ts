/**
 * A small benchmark harness: each case runs for a fixed wall-clock budget after a warm-up and
 * reports operations per second. Figures go to docs/performance.md with the command that
 * produced them; no test asserts on them (timing tests are flaky on shared machines).
 */
export interface BenchRow {
  name: string;
  opsPerSec: number;
  /** Name of the peer this row is compared with, and the ratio (ours / peer), when there is one. */
  vs?: string;
  ratio?: number;
}

/** Runs `fn` repeatedly for `budgetMs` (after `warmupMs`), in batches to keep timer reads cheap. */
export function measure(name: string, fn: () => unknown, budgetMs = 1000, warmupMs = 200): BenchRow {
  const deadlineWarm = performance.now() + warmupMs;
  while (performance.now() < deadlineWarm) for (let i = 0; i < 16; i++) fn();
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < budgetMs) {
    for (let i = 0; i < 64; i++) fn();
    ops += 64;
    now = performance.now();
  }
  return { name, opsPerSec: Math.round((ops * 1000) / (now - start)) };
}

export function formatRows(rows: BenchRow[]): string {
  const w = Math.max(...rows.map((r) => r.name.length), 9);
  const out = [`${'operation'.padEnd(w)}  ${'ops/s'.padStart(12)}  vs`];
  for (const r of rows) {
    const vs = r.vs && r.ratio !== undefined ? `${r.ratio.toFixed(1)}x ${r.vs}` : '';
    out.push(`${r.name.padEnd(w)}  ${r.opsPerSec.toLocaleString('en-US').padStart(12)}  ${vs}`);
  }
  return out.join('\n');
}
