/**
 * The seeded random source of the randomized tests (fuzz, reader differential, interning): xorshift32,
 * small and replayable. The seed is FUZZ_SEED when set, else drawn from the clock; each test names it.
 */
export function seededRng(): { seed: number; rnd: (n: number) => number } {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  let state = seed || 1;
  /** An integer in [0, n). */
  const rnd = (n: number): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
  return { seed, rnd };
}
