/**
 * The demo network's directory: where each file is, and the manifest (`network.json`) that names the
 * ports, config files and terminals. The manifest holds no secret: no key, component, PAN or PIN.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CliError } from '../errors.js';

export const MANIFEST_FORMAT = 'openposp-network';
export const MANIFEST_FILE = 'network.json';

export interface NetworkManifest {
  format: typeof MANIFEST_FORMAT;
  version: 1;
  host: string;
  createdAt: string;
  hsm: {
    port: number;
    sealed: string;
    /** Demo only: the custodians' component files, kept together so that `posp up` can unseal. */
    components: string[];
    audit: string;
    lmkCheckValue: string;
  };
  issuers: { id: string; name: string; config: string; database: string; port: number; log: string }[];
  switch: { config: string; routing: string; database: string; port: number; log: string };
  posp: { config: string; terminals: string; database: string; port: number; log: string };
  terminals: {
    terminalId: string;
    merchantId: string;
    merchantName: string;
    config: string;
    /** Demo only: the PIN pad's device secret (what a tamper-responsive enclosure would keep). */
    deviceSecretFile: string;
    database: string;
  }[];
  logs: string;
}

/** Paths of a network directory (absolute). */
export function layoutOf(dirInput: string) {
  const dir = resolve(dirInput);
  return {
    dir,
    manifest: join(dir, MANIFEST_FILE),
    readme: join(dir, 'README.txt'),
    hsmDir: join(dir, 'hsm'),
    logs: join(dir, 'logs'),
    issuerDir: (id: string) => join(dir, 'issuers', id),
    switchDir: join(dir, 'switch'),
    pospDir: join(dir, 'posp'),
    terminalDir: (id: string) => join(dir, 'terminals', id),
  };
}

export function readManifest(dir: string): NetworkManifest {
  const p = layoutOf(dir).manifest;
  if (!existsSync(p))
    throw new CliError(
      'CLI_REQUEST_INVALID',
      `--dir: ${dir} holds no network (no ${MANIFEST_FILE}; run posp up or posp demo)`,
    );
  const m = JSON.parse(readFileSync(p, 'utf8')) as NetworkManifest;
  if (m?.format !== MANIFEST_FORMAT || m.version !== 1)
    throw new CliError('CLI_REQUEST_INVALID', `--dir: ${p} is not an ${MANIFEST_FORMAT} v1 manifest`);
  return m;
}

export function hasManifest(dir: string): boolean {
  return existsSync(layoutOf(dir).manifest);
}
