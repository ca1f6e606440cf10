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
  demo       set up and start a demo network, run a short day on three terminals, print the slips
  up         set up (once) and run the network: HSM, two issuers, switch, POSP, each its own process
  terminal   drive a terminal against a running network (sign-in, purchase, inquiry, void, refund)
  txn        txn show: the state of one transaction at every party
  saf        saf list|retry|drop --dir D: the POSP's store-and-forward queue of reversal advices
  reconcile  reconcile --date YYYYMMDD --dir D [--apply] [--json]: clearing files, mismatches by class, refunds
  chaos      seeded run of the network under faults and kills, then the auditor of docs/invariants.md
  load       load --terminals N --duration S [--rate R] [--json]: simulated terminals, throughput and latency
  hsm        the HSM: LMK ceremony (init), serve, audit verify
  issuer     issuer serve --config FILE [--db PATH|postgres://…]
  switch     switch serve --config FILE [--db PATH|postgres://…]
  acquirer   acquirer serve --config FILE [--db PATH|postgres://…] (the POSP)
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
    case 'hsm': {
      const { hsmCommand } = await import('./hsm-cmd.js');
      return hsmCommand(rest, io);
    }
    case 'issuer':
    case 'switch':
    case 'acquirer':
    case 'posp': {
      const { serveCommand } = await import('./serve.js');
      return serveCommand(cmd === 'posp' ? 'acquirer' : cmd, rest, io);
    }
    case 'up': {
      const { upCommand } = await import('./network/up.js');
      return upCommand(rest, io);
    }
    case 'demo': {
      const { demoCommand } = await import('./network/demo.js');
      return demoCommand(rest, io);
    }
    case 'terminal': {
      const { terminalCommand } = await import('./network/terminal-cmd.js');
      return terminalCommand(rest, io);
    }
    case 'txn': {
      const { txnCommand } = await import('./network/txn.js');
      return txnCommand(rest, io);
    }
    case 'saf': {
      const { safCommand } = await import('./saf.js');
      return safCommand(rest, io);
    }
    case 'reconcile': {
      const { reconcileCommand } = await import('./reconcile.js');
      return reconcileCommand(rest, io);
    }
    case 'chaos': {
      const { chaosCommand } = await import('./chaos/command.js');
      return chaosCommand(rest, io);
    }
    case 'load': {
      const { loadCommand } = await import('./load/command.js');
      return loadCommand(rest, io);
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
