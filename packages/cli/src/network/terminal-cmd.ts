/**
 * `posp terminal`: drives one terminal of a network directory against a running network.
 *
 *   posp terminal sign-in  --dir D --terminal ID
 *   posp terminal purchase --dir D --terminal ID (--card PAN [--expiry YYMM] | --track2 T) --amount 12.34 --pin-stdin
 *   posp terminal inquiry  --dir D --terminal ID (--card PAN | --track2 T) --pin-stdin
 *   posp terminal void     --dir D --terminal ID (--card PAN | --track2 T) --original-stan N [--pin-stdin]
 *   posp terminal refund   --dir D --terminal ID (--card PAN | --track2 T) --amount 1.00
 *                          --original-rrn R --original-date MMDD [--original-stan N [--original-batch N]]
 *   posp terminal status   --dir D --terminal ID
 *
 * The PIN is read from stdin (first line), never from argv (argv is visible to other users in `ps`).
 * Prints the slips, or with --json one object. Exit 0 approved, 1 declined, 3 no valid answer (no
 * answer, MAC failed, sign-in refused), 2 usage.
 */
import { readFileSync } from 'node:fs';
import { fromHex, wipe } from '@openposp/crypto';
import { createLogger } from '@openposp/net';
import {
  type CardInput,
  type SignInResult,
  startTerminal,
  type Terminal,
  type TransactionResult,
} from '@openposp/terminal';
import { describeError, type ParsedFlags, parseFlags, readFirstLine, required } from '../args.js';
import { CliError } from '../errors.js';
import type { Io } from '../main.js';
import { DEMO_CARDS } from './cards.js';
import { type NetworkManifest, readManifest } from './layout.js';

const USAGE = `usage: posp terminal sign-in  --dir D --terminal ID [--json]
       posp terminal purchase --dir D --terminal ID (--card PAN [--expiry YYMM] | --track2 T) --amount 12.34 --pin-stdin [--json]
       posp terminal inquiry  --dir D --terminal ID (--card PAN | --track2 T) --pin-stdin [--json]
       posp terminal void     --dir D --terminal ID (--card PAN | --track2 T) --original-stan N [--pin-stdin] [--json]
       posp terminal refund   --dir D --terminal ID (--card PAN | --track2 T) --amount 1.00
                              --original-rrn R --original-date MMDD [--original-stan N [--original-batch N]] [--json]
       posp terminal status   --dir D --terminal ID

  Drives a terminal of a network started with \`posp up --dir D\`. The PIN is read from stdin, never from
  the command line. --card without --expiry takes the expiry of the demo card with that PAN.
  Exit status: 0 approved, 1 declined, 3 no valid answer (no answer, MAC failed, sign-in refused).
`;

/** Opens a terminal of a network directory with its device secret (demo: a file beside its config). */
export async function openNetworkTerminal(m: NetworkManifest, terminalId: string): Promise<Terminal> {
  const t = m.terminals.find((x) => x.terminalId === terminalId);
  if (!t)
    throw new CliError(
      'CLI_REQUEST_INVALID',
      `--terminal: no terminal ${terminalId} in this network (${m.terminals.map((x) => x.terminalId).join(', ')})`,
    );
  const secret = fromHex(readFileSync(t.deviceSecretFile, 'utf8').trim(), 'deviceSecret');
  try {
    return await startTerminal(t.config, {
      deviceSecret: secret,
      log: createLogger({ service: 'terminal', path: `${m.logs}/terminals.log` }),
    });
  } finally {
    wipe(secret);
  }
}

/** Decimal major units (`12.34`, `5`) to integer minor units, without floating point. */
export function parseAmountMinor(text: string, field = '--amount'): number {
  const m = /^([0-9]{1,10})(?:\.([0-9]{1,2}))?$/.exec(text);
  if (!m) throw new CliError('CLI_REQUEST_INVALID', `${field}: must be an amount like 12.34`);
  const minor = Number(m[1]) * 100 + Number((m[2] ?? '0').padEnd(2, '0'));
  if (minor <= 0) throw new CliError('CLI_REQUEST_INVALID', `${field}: must be above zero`);
  return minor;
}

function cardOf(f: ParsedFlags): CardInput {
  const pan = f.values.get('card');
  const track2 = f.values.get('track2');
  if ((pan === undefined) === (track2 === undefined))
    throw new CliError('CLI_REQUEST_INVALID', 'give exactly one of --card PAN and --track2 T');
  if (track2 !== undefined) return { track2 };
  const expiry = f.values.get('expiry') ?? DEMO_CARDS.find((c) => c.pan === pan)?.expiry;
  if (expiry === undefined)
    throw new CliError('CLI_REQUEST_INVALID', '--expiry: needed for a card that is not a demo card (YYMM)');
  return { pan: pan!, expiry };
}

async function pinOf(f: ParsedFlags, io: Io, requiredPin: boolean): Promise<string | undefined> {
  if (!f.switches.has('pin-stdin')) {
    if (requiredPin)
      throw new CliError('CLI_REQUEST_INVALID', '--pin-stdin: this transaction needs the PIN on stdin');
    return undefined;
  }
  const pin = (await readFirstLine(io.stdin as AsyncIterable<Buffer>, 256)).trim();
  if (!/^[0-9]{4,12}$/.test(pin))
    throw new CliError('CLI_REQUEST_INVALID', 'stdin: the PIN must be 4 to 12 digits');
  return pin;
}

/** What `--json` prints for one transaction (and `posp demo` collects). */
export function resultJson(terminalId: string, r: TransactionResult): Record<string, unknown> {
  return {
    terminal: terminalId,
    type: r.type,
    status: r.status,
    amountMinor: r.amountMinor,
    responseCode: r.responseCode ?? null,
    rrn: r.rrn ?? null,
    authCode: r.authCode ?? null,
    stan: r.stan,
    batchNumber: r.batchNumber,
    localDate: r.localDate,
    maskedPan: r.maskedPan,
    ...(r.balanceMinor !== undefined ? { balanceMinor: r.balanceMinor } : {}),
  };
}

function exitOf(status: string): number {
  return status === 'approved' ? 0 : status === 'declined' ? 1 : 3;
}

export async function terminalCommand(args: string[], io: Io): Promise<number> {
  const [op, ...rest] = args;
  if (op === undefined || op === 'help' || op === '--help') {
    io.stdout.write(USAGE);
    return op === undefined ? 2 : 0;
  }
  let f: ParsedFlags;
  let term: Terminal | undefined;
  try {
    f = parseFlags(rest, {
      values: [
        'dir',
        'terminal',
        'card',
        'expiry',
        'track2',
        'amount',
        'original-stan',
        'original-rrn',
        'original-date',
        'original-batch',
      ],
      switches: ['pin-stdin', 'json'],
    });
    if (f.positional.length > 0)
      throw new CliError('CLI_REQUEST_INVALID', `unexpected argument ${f.positional[0]}`);
    if (!['sign-in', 'purchase', 'inquiry', 'void', 'refund', 'status'].includes(op))
      throw new CliError('CLI_REQUEST_INVALID', `unknown terminal operation '${op}'`);
    const m = readManifest(required(f, 'dir'));
    const id = required(f, 'terminal');
    const json = f.switches.has('json');
    // Everything a user can get wrong is checked before the terminal (and its STAN) is touched.
    let run: (t: Terminal) => Promise<TransactionResult>;
    switch (op) {
      case 'sign-in':
      case 'status':
        run = undefined as never;
        break;
      case 'purchase': {
        const card = cardOf(f);
        const amountMinor = parseAmountMinor(required(f, 'amount'));
        const pin = await pinOf(f, io, true);
        run = (t) => t.purchase({ card, amountMinor, ...(pin ? { pin } : {}) });
        break;
      }
      case 'inquiry': {
        const card = cardOf(f);
        const pin = await pinOf(f, io, true);
        run = (t) => t.balanceInquiry({ card, ...(pin ? { pin } : {}) });
        break;
      }
      case 'void': {
        const card = cardOf(f);
        const originalStan = required(f, 'original-stan');
        const pin = await pinOf(f, io, false);
        run = (t) => t.voidPurchase({ card, originalStan, ...(pin ? { pin } : {}) });
        break;
      }
      default: {
        const card = cardOf(f);
        const amountMinor = parseAmountMinor(required(f, 'amount'));
        const rrn = required(f, 'original-rrn');
        const date = required(f, 'original-date');
        const stan = f.values.get('original-stan');
        const batch = f.values.get('original-batch');
        // The POSP finds the original by terminal, batch and STAN (61): without --original-batch the
        // terminal's current batch is meant.
        run = async (t) =>
          t.refund({
            card,
            amountMinor,
            original: {
              rrn,
              date,
              ...(stan ? { stan, batchNumber: batch ?? (await t.status()).batchNumber } : {}),
            },
          });
      }
    }
    term = await openNetworkTerminal(m, id);
    if (op === 'status') {
      io.stdout.write(`${JSON.stringify(await term.status(), null, 2)}\n`);
      return 0;
    }
    if (op === 'sign-in') {
      const r: SignInResult = await term.signIn();
      if (json) io.stdout.write(`${JSON.stringify({ terminal: id, type: 'sign-in', ...signInJson(r) })}\n`);
      else io.stdout.write(`${id} sign-in: ${describeSignIn(r)}\n`);
      return r.status === 'approved' ? 0 : r.status === 'declined' ? 1 : 3;
    }
    const r = await run(term);
    if (json) io.stdout.write(`${JSON.stringify(resultJson(id, r))}\n`);
    else {
      const s = term.slips(r);
      io.stdout.write(`${s.merchant}\n${s.cardholder}`);
    }
    return exitOf(r.status);
  } catch (e) {
    if (e instanceof CliError && e.code === 'CLI_REQUEST_INVALID') {
      io.stderr.write(`posp terminal: ${e.message}\n${USAGE}`);
      return 2;
    }
    io.stderr.write(`posp terminal: ${describeError(e)}\n`);
    return 1;
  } finally {
    await term?.close();
  }
}

export function signInJson(r: SignInResult): Record<string, unknown> {
  return {
    status: r.status,
    responseCode: r.responseCode ?? null,
    stan: r.stan,
    batchNumber: r.batchNumber ?? null,
    ...(r.refusedReason ? { refusedReason: r.refusedReason } : {}),
    checkValues: (r.slots ?? []).map((s) => ({ slot: s.slot, usage: s.usage, checkValue: s.checkValueHex })),
  };
}

export function describeSignIn(r: SignInResult): string {
  if (r.status === 'approved')
    return `approved, batch ${r.batchNumber}, keys ${(r.slots ?? []).map((s) => `${s.usage} ${s.checkValueHex}`).join(', ')}`;
  if (r.status === 'declined') return `declined ${r.responseCode}`;
  if (r.status === 'refused') return `refused (${r.refusedReason}): the old keys stay`;
  return 'no answer';
}
