import type { Io } from './main.js';

export async function cryptoCommand(_argv: string[], io: Io): Promise<number> {
  io.stderr.write('posp crypto: not built yet\n');
  return 2;
}
