/**
 * `posp saf list|retry|drop --dir D`: the POSP's store-and-forward queue of reversal advices
 * (docs/network.md "Reversals, store and forward"), read from the POSP database of a network directory.
 * The network need not run; when it does, the POSP's worker sees a retry at its next poll.
 *
 * - list [--state pending|operator|done|dropped] [--json]: every advice (oldest first), masked PAN only;
 * - retry --id N: an operator (expired) advice is sent again from now, with a fresh count;
 * - drop --id N: the operator gives an advice up (settled by hand); its PAN is erased.
 */
import { openAcquirerSaf, type SafItem, type SafState } from '@openposp/acquirer';
import { describeError, parseFlags, required } from './args.js';
import { CliError } from './errors.js';
import type { Io } from './main.js';
import { readManifest } from './network/layout.js';

const USAGE = `usage: posp saf list --dir D [--state pending|operator|done|dropped] [--json]
       posp saf retry --dir D --id N
       posp saf drop --dir D --id N

  The POSP's store-and-forward queue: reversal advices it owes the switch (pending), those that expired
  into the operator queue (operator), delivered (done) and given up (dropped).
`;

const STATES: readonly SafState[] = ['pending', 'operator', 'done', 'dropped'];

/** One line per advice: id, state, source, reason, attempts, RRN, masked PAN, amount, last error. */
export function describeSafItems(items: readonly SafItem[]): string {
  if (items.length === 0) return 'no advices\n';
  const rows = items.map((i) => [
    String(i.id),
    i.state,
    i.source,
    i.reason,
    String(i.attempts),
    i.originalRrn,
    i.panMasked,
    String(Number(i.fields['4'] ?? '0')),
    i.nextAt,
    i.lastError ?? i.responseCode ?? '',
  ]);
  const head = ['id', 'state', 'source', 'reason', 'attempts', 'rrn', 'pan', 'amountMinor', 'nextAt', 'last'];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) =>
    `${r
      .map((v, c) => v.padEnd(widths[c]!))
      .join('  ')
      .trimEnd()}\n`;
  return line(head) + rows.map(line).join('');
}

function idFlag(v: string): number {
  if (!/^[1-9][0-9]{0,15}$/.test(v))
    throw new CliError('CLI_REQUEST_INVALID', '--id: must be a positive integer');
  return Number(v);
}

export async function safCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  try {
    if (sub === undefined || sub === 'help' || sub === '--help') {
      io.stdout.write(USAGE);
      return sub === undefined ? 2 : 0;
    }
    if (sub !== 'list' && sub !== 'retry' && sub !== 'drop')
      throw new CliError('CLI_REQUEST_INVALID', `unknown saf subcommand '${sub}'`);
    const f = parseFlags(rest, { values: ['dir', 'state', 'id'], switches: ['json'] });
    const m = readManifest(required(f, 'dir'));
    const state = f.values.get('state');
    if (state !== undefined && !STATES.includes(state as SafState))
      throw new CliError('CLI_REQUEST_INVALID', `--state: must be one of ${STATES.join(', ')}`);
    const id = sub === 'list' ? undefined : idFlag(required(f, 'id'));
    const saf = await openAcquirerSaf(m.posp.database);
    try {
      if (sub === 'list') {
        const items = await saf.list(state as SafState | undefined);
        io.stdout.write(
          f.switches.has('json') ? `${JSON.stringify(items, null, 2)}\n` : describeSafItems(items),
        );
        return 0;
      }
      const item = sub === 'retry' ? await saf.retry(id!) : await saf.drop(id!);
      io.stdout.write(
        f.switches.has('json') ? `${JSON.stringify(item, null, 2)}\n` : describeSafItems([item]),
      );
      return 0;
    } finally {
      await saf.close();
    }
  } catch (e) {
    if (e instanceof CliError && e.code === 'CLI_REQUEST_INVALID') {
      io.stderr.write(`posp saf: ${e.message}\n${USAGE}`);
      return 2;
    }
    io.stderr.write(`posp saf: ${describeError(e)}\n`);
    return 1;
  }
}
