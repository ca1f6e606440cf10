/**
 * `posp iso8583`: look inside an ISO 8583 message, or build one from JSON.
 *
 *   posp iso8583 describe [--spec cup-pos] [--framed] [--json] [--reveal] HEX|-
 *   posp iso8583 pack --spec NAME [--framed] < message.json
 *
 * `--framed`: the hex is a whole UnionPay terminal frame, 2-byte length | TPDU | header | message
 * (cup-pos-dialect.md 2.1). Sensitive fields are masked unless `--reveal`: the output of `describe` is
 * meant to be pasted into tickets and chats, so masking is the default and revealing is explicit.
 */
import {
  bytesToHex,
  buildCupHeader,
  buildTpdu,
  type CupHeader,
  decodeFrame,
  describe,
  encodeFrame,
  fromJson,
  hexToBytes,
  isIso8583Error,
  joinCupFrame,
  loadSpec,
  pack,
  parseCupHeader,
  parseTpdu,
  splitCupFrame,
  type Tpdu,
  toJson,
  unpack,
} from '@openposp/iso8583';
import { CliError } from './errors.js';
import type { Io } from './main.js';

/** Largest input read from stdin: far above any ISO 8583 message (a frame is at most 64 KiB). */
export const ISO8583_INPUT_MAX_BYTES = 1 << 20;

const USAGE = `usage: posp iso8583 describe [--spec NAME|FILE] [--framed] [--json] [--reveal] HEX|-
       posp iso8583 pack --spec NAME|FILE [--framed] < message.json

  describe   print the fields of a message given in hex (- reads the hex from stdin)
  pack       read {"tpdu"?, "header"?, "mti", "fields"} from stdin, print the packed message in hex

options:
  --spec     a built-in spec (cup-pos, iso87-binary, iso87-ascii) or a spec JSON file; describe: cup-pos
  --framed   the message is framed as on a UnionPay terminal link:
             2-byte length | TPDU (5 bytes) | header (6 bytes) | message
  --json     describe: print {"tpdu"?, "header"?, "mti", "fields"} instead of a table
  --reveal   describe: show sensitive fields (PAN, track data, PIN block, keys...) in clear
`;

interface Options {
  spec?: string;
  framed: boolean;
  json: boolean;
  reveal: boolean;
  positional: string[];
}

/** Parses flags; returns a usage message on error. */
function parseArgs(args: string[]): Options | string {
  const o: Options = { framed: false, json: false, reveal: false, positional: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--framed') o.framed = true;
    else if (a === '--json') o.json = true;
    else if (a === '--reveal') o.reveal = true;
    else if (a === '--spec' || a.startsWith('--spec=')) {
      const v = a === '--spec' ? args[++i] : a.slice('--spec='.length);
      if (v === undefined || v === '') return 'option --spec needs a value';
      o.spec = v;
    } else if (a === '-' || !a.startsWith('-')) o.positional.push(a);
    else return `unknown option ${a}`;
  }
  return o;
}

/** Reads all of stdin, refusing more than ISO8583_INPUT_MAX_BYTES. */
async function readStdin(io: Io): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of io.stdin as AsyncIterable<Buffer | string>) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    total += b.length;
    if (total > ISO8583_INPUT_MAX_BYTES) {
      throw new CliError('CLI_REQUEST_INVALID', `stdin: input longer than ${ISO8583_INPUT_MAX_BYTES} bytes`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Hex from the command line or a log: whitespace (as in `60 00 03 ...` dumps) is ignored. */
function parseHex(text: string): Uint8Array {
  const hex = text.replace(/\s+/g, '');
  if (hex.length === 0) throw new CliError('CLI_REQUEST_INVALID', 'message: no hex given');
  return hexToBytes(hex, 'message');
}

function formatHeader(h: CupHeader): string {
  return `${h.applicationType} ${h.softwareVersion} ${h.terminalStatus} ${h.processingRequirement} ${h.reserved}`;
}

async function describeCommand(o: Options, io: Io): Promise<number> {
  if (o.positional.length !== 1) return usageError(io, 'describe takes one HEX argument, or - for stdin');
  const input = o.positional[0] === '-' ? await readStdin(io) : o.positional[0]!;
  const spec = loadSpec(o.spec ?? 'cup-pos');
  let bytes = parseHex(input);
  let tpdu: Tpdu | undefined;
  let header: CupHeader | undefined;
  if (o.framed) {
    const frame = splitCupFrame(decodeFrame(bytes));
    tpdu = frame.tpdu;
    header = frame.header;
    bytes = frame.message;
  }
  const message = unpack(spec, bytes);
  if (o.json) {
    const view = toJson(message, { reveal: o.reveal });
    const out: Record<string, unknown> = {};
    if (tpdu) out.tpdu = bytesToHex(buildTpdu(tpdu));
    if (header) out.header = bytesToHex(buildCupHeader(header));
    out.mti = view.mti;
    out.fields = view.fields;
    io.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  }
  const lines: string[] = [];
  if (tpdu) {
    const hex = bytesToHex(buildTpdu(tpdu));
    lines.push(`TPDU    ${hex}  (destination ${hex.slice(2, 6)}, source ${hex.slice(6, 10)})`);
  }
  if (header) {
    lines.push(
      `header  ${bytesToHex(buildCupHeader(header))}  (application type, version, terminal status, processing requirement, reserved: ${formatHeader(header)})`,
    );
  }
  lines.push(describe(message, { reveal: o.reveal }));
  io.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

async function packCommand(o: Options, io: Io): Promise<number> {
  if (o.spec === undefined) return usageError(io, 'pack needs --spec');
  if (o.positional.length !== 0) return usageError(io, 'pack reads the message JSON from stdin');
  const spec = loadSpec(o.spec);
  const text = await readStdin(io);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CliError('CLI_REQUEST_INVALID', 'stdin: not valid JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CliError('CLI_REQUEST_INVALID', 'stdin: must be a JSON object {"mti", "fields"}');
  }
  const { tpdu, header, ...rest } = json as Record<string, unknown>;
  let packed = pack(spec, fromJson(spec, rest));
  if (o.framed) {
    if (typeof tpdu !== 'string' || typeof header !== 'string') {
      throw new CliError('CLI_REQUEST_INVALID', 'tpdu, header: --framed needs both, as hex strings');
    }
    packed = encodeFrame(
      joinCupFrame({
        tpdu: parseTpdu(hexToBytes(tpdu, 'tpdu')),
        header: parseCupHeader(hexToBytes(header, 'header')),
        message: packed,
      }),
    );
  } else if (tpdu !== undefined || header !== undefined) {
    throw new CliError('CLI_REQUEST_INVALID', 'tpdu, header: only with --framed');
  }
  io.stdout.write(`${bytesToHex(packed)}\n`);
  return 0;
}

function usageError(io: Io, message: string): number {
  io.stderr.write(`posp iso8583: ${message}\n\n${USAGE}`);
  return 2;
}

export async function iso8583Command(argv: string[], io: Io): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    io.stdout.write(USAGE);
    return verb === undefined ? 2 : 0;
  }
  if (verb !== 'describe' && verb !== 'pack') return usageError(io, `unknown subcommand '${verb}'`);
  const o = parseArgs(rest);
  if (typeof o === 'string') return usageError(io, o);
  try {
    return verb === 'describe' ? await describeCommand(o, io) : await packCommand(o, io);
  } catch (e) {
    // Library errors carry a stable code and a message that never holds card data (the codec's rule);
    // anything else is a defect, reported without its message, which could hold input.
    if (isIso8583Error(e) || e instanceof CliError)
      io.stderr.write(`posp iso8583: ${e.code}: ${e.message}\n`);
    else io.stderr.write('posp iso8583: CLI_INTERNAL: unexpected failure\n');
    return 1;
  }
}
