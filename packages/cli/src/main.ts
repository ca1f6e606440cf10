/**
 * The `posp` command. Subcommands are dispatched here; each family lives in its own file.
 * `main` returns the exit code and never throws: errors are printed once, here, at the boundary.
 */
import type { Readable, Writable } from 'node:stream';

export interface Io {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
}

const USAGE = `usage: posp <command> [options]

commands:
  crypto     payment crypto calculator (kcv, encrypt, decrypt, pinblock, mac, dukpt, tr31, sm3, pvv, ibm3624, cvv, batch)
  iso8583    describe or pack ISO 8583 messages (cup-pos, iso87-binary, iso87-ascii)
  help       this text
`;

export async function main(argv: string[], io: Io): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'crypto': {
      const { cryptoCommand } = await import('./crypto.js');
      return cryptoCommand(rest, io);
    }
    case 'iso8583': {
      const { iso8583Command } = await import('./iso8583.js');
      return iso8583Command(rest, io);
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      io.stderr.write(`posp: unknown command '${cmd}'\n${USAGE}`);
      return 2;
  }
}
