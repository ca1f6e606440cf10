/** Runs `posp` in process with in-memory streams. */
import { PassThrough } from 'node:stream';
import { main } from '../src/main.js';

export async function runPosp(
  argv: string[],
  stdin = '',
): Promise<{ code: number; out: string; err: string }> {
  const input = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  input.end(stdin);
  const code = await main(argv, { stdin: input, stdout, stderr });
  return { code, out, err };
}
