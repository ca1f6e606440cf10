/**
 * What the CLI (`posp hsm init`, `posp hsm serve`, `posp hsm audit verify`) needs, as functions: the
 * LMK ceremony from component files, opening a sealed LMK, and starting the HSM on a TCP port. The CLI
 * itself (prompts, flags) lives in the cli package.
 *
 * Component file (one per custodian, written 0600 and never overwritten):
 *   {"format":"openposp-hsm-lmk-component","component":"<64 hex>","checkValue":"<10 hex>"}
 * The custodian compares `checkValue` with the one printed at generation; `formLmk` checks it again.
 */
import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { fromHex, toHex } from '@openposp/crypto';
import type { AddressInfo } from 'node:net';
import { AuditLog } from './audit.js';
import { type AuthConfig, Authorization } from './auth.js';
import { LocalHsm } from './local.js';
import { registerHsmCommands } from './commands.js';
import { HsmError } from './errors.js';
import { Hsm } from './hsm.js';
import {
  formLmk,
  generateLmkComponent,
  type Lmk,
  type LmkComponent,
  parseSealedLmk,
  type ScryptParams,
  type SealSecret,
  sealLmk,
  unsealLmk,
} from './lmk.js';
import { HsmServer, type HsmServerOptions } from './server.js';

export const LMK_COMPONENT_FILE_FORMAT = 'openposp-hsm-lmk-component';
/** A component or sealed file is a few hundred bytes; refuse to read anything larger. */
const MAX_FILE_BYTES = 64 * 1024;

/** Writes `text` to a new file (never overwriting), mode 0600, fsync'ed. */
function writeNewFile(path: string, text: string): void {
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function readSmallFile(
  path: string,
  field: string,
  code: 'HSM_LMK_COMPONENT' | 'HSM_LMK_SEALED_FORMAT',
): string {
  const buf = readFileSync(path);
  if (buf.length > MAX_FILE_BYTES)
    throw new HsmError(code, field, `file is larger than ${MAX_FILE_BYTES} bytes`);
  return buf.toString('utf8');
}

/** Generates one custodian's component into a new file; returns its check value (to read aloud / print). */
export function writeLmkComponentFile(
  path: string,
  component: LmkComponent = generateLmkComponent(),
): string {
  writeNewFile(
    path,
    `${JSON.stringify({ format: LMK_COMPONENT_FILE_FORMAT, component: toHex(component.component), checkValue: component.checkValue })}\n`,
  );
  return component.checkValue;
}

/** Reads a component file (HSM_LMK_COMPONENT when malformed; the field names the file's position, not its text). */
export function readLmkComponentFile(path: string, field = 'componentFile'): LmkComponent {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(readSmallFile(path, field, 'HSM_LMK_COMPONENT'));
  } catch (e) {
    if (e instanceof HsmError) throw e;
    throw new HsmError('HSM_LMK_COMPONENT', field, 'is not a JSON component file');
  }
  if (o?.format !== LMK_COMPONENT_FILE_FORMAT) {
    throw new HsmError('HSM_LMK_COMPONENT', `${field}.format`, `must be ${LMK_COMPONENT_FILE_FORMAT}`);
  }
  if (typeof o.component !== 'string' || !/^[0-9A-Fa-f]{64}$/.test(o.component)) {
    throw new HsmError('HSM_LMK_COMPONENT', `${field}.component`, 'must be 64 hex digits');
  }
  if (typeof o.checkValue !== 'string') {
    throw new HsmError('HSM_LMK_COMPONENT', `${field}.checkValue`, 'must be a string of hex digits');
  }
  return { component: fromHex(o.component, `${field}.component`), checkValue: o.checkValue };
}

export interface InitLmkOptions {
  componentFiles: readonly string[];
  /** Seal under a passphrase, or under the components themselves ('components'). */
  sealWith: { passphrase: string } | 'components';
  /** Path of the sealed LMK file to create (never overwritten). */
  sealedPath: string;
  /** Audit log to create or continue: the ceremony is its first event after genesis. */
  auditPath?: string;
  kdf?: ScryptParams;
  who?: string;
}

/**
 * The LMK ceremony from component files: reads and checks each component (its check value), forms the
 * LMK, seals it to `sealedPath`, records the ceremony in the audit log. Returns the LMK check value.
 */
export async function initLmkFromComponentFiles(opts: InitLmkOptions): Promise<{ lmkCheckValue: string }> {
  const components = opts.componentFiles.map((p, i) => readLmkComponentFile(p, `componentFiles[${i}]`));
  try {
    const lmk = formLmk(components);
    try {
      const secret: SealSecret = opts.sealWith === 'components' ? { components } : opts.sealWith;
      const sealed = sealLmk(lmk, secret, opts.kdf ? { kdf: opts.kdf } : {});
      writeNewFile(opts.sealedPath, `${JSON.stringify(sealed, null, 2)}\n`);
      if (opts.auditPath !== undefined) {
        const audit = await AuditLog.open(opts.auditPath, { lmkCheckValue: lmk.checkValue });
        audit.append({
          who: opts.who ?? 'console',
          command: 'LMK_FORM',
          checkValue: lmk.checkValue,
          result: '00',
        });
        audit.close();
      }
      return { lmkCheckValue: lmk.checkValue };
    } finally {
      lmk.destroy();
    }
  } finally {
    for (const c of components) c.component.fill(0);
  }
}

/** Opens a sealed LMK file with its passphrase, or with the component files that formed it. */
export function openSealedLmk(
  sealedPath: string,
  secret: { passphrase: string } | { componentFiles: readonly string[] },
): Lmk {
  const sealed = parseSealedLmk(readSmallFile(sealedPath, 'sealed', 'HSM_LMK_SEALED_FORMAT'));
  if ('passphrase' in secret) return unsealLmk(sealed, secret);
  const components = secret.componentFiles.map((p, i) => readLmkComponentFile(p, `componentFiles[${i}]`));
  try {
    return unsealLmk(sealed, { components });
  } finally {
    for (const c of components) c.component.fill(0);
  }
}

export interface ServeHsmOptions extends HsmServerOptions {
  lmk: Lmk;
  port: number;
  host?: string;
  auditPath?: string;
  auth?: AuthConfig;
  sensitiveActivities?: readonly string[];
  /** `--allow-pin-downgrade`: allow PIN translations to a weaker format (default refused, error 23). */
  allowPinBlockDowngrade?: boolean;
  /** Unwrapped key blocks cached (default 1024; 0 disables). */
  keyCacheEntries?: number;
}

export interface RunningHsm {
  hsm: Hsm;
  /** The same HSM behind the async HsmApi (for a service running in this process). */
  api: LocalHsm;
  server: HsmServer;
  address: AddressInfo;
  audit: AuditLog | undefined;
  authorization: Authorization | undefined;
  /** Stops the server and closes the audit log. */
  stop(): Promise<void>;
}

/** Starts the HSM on a TCP port with every host command registered (`posp hsm serve`). */
export async function serveHsm(opts: ServeHsmOptions): Promise<RunningHsm> {
  const audit = opts.auditPath
    ? await AuditLog.open(opts.auditPath, { lmkCheckValue: opts.lmk.checkValue })
    : undefined;
  const authorization = opts.auth ? new Authorization(opts.auth) : undefined;
  const hsm = new Hsm({
    lmk: opts.lmk,
    ...(audit ? { audit } : {}),
    ...(authorization ? { authorization } : {}),
    ...(opts.sensitiveActivities ? { sensitiveActivities: opts.sensitiveActivities } : {}),
    ...(opts.allowPinBlockDowngrade ? { allowPinBlockDowngrade: true } : {}),
    ...(opts.keyCacheEntries !== undefined ? { keyCacheEntries: opts.keyCacheEntries } : {}),
  });
  const server = registerHsmCommands(new HsmServer(opts), hsm);
  const address = await server.listen(opts.port, opts.host);
  return {
    hsm,
    api: new LocalHsm(hsm, { who: 'local' }),
    server,
    address,
    audit,
    authorization,
    stop: async () => {
      await server.close();
      hsm.destroy();
      audit?.close();
    },
  };
}
