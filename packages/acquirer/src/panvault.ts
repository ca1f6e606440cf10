/**
 * The one place the POSP keeps a full PAN at rest: a reversal advice it still owes upstream (the issuer
 * matches a reversal by card, field 2). The PAN is stored sealed: encrypted by the HSM (M0) under the
 * POSP's data key (a DEK key block under the LMK, config `dataKey`), so the database, its write-ahead
 * log and its backups never hold it in clear (PCI DSS v4.0 requirement 3.5.1). Only the store-and-forward
 * worker opens it (M2), just before it packs the 0420, and drops it with the message.
 *
 * Format: `v1:` IV (hex) `:` ciphertext (hex), CBC with ISO 9797-1 padding method 2 and an IV the HSM
 * draws for each PAN, so the same card sealed twice gives two unrelated values. No integrity: a row an
 * attacker alters opens to garbage or is refused (bad padding); the advice then goes to the operator
 * queue, never to the switch with another card (the PAN is checked for digits and length on opening).
 */
import { AcquirerError } from './errors.js';
import type { AcquirerHsm } from './hsm.js';

const SEALED = /^v1:([0-9A-F]{16}|[0-9A-F]{32}):((?:[0-9A-F]{16})+)$/;
const PAN = /^[0-9]{12,19}$/;

export class PanVault {
  constructor(
    private readonly hsm: AcquirerHsm,
    private readonly dataKey: string,
  ) {}

  async seal(pan: string): Promise<string> {
    if (!PAN.test(pan)) throw new AcquirerError('ACQUIRER_PAN_SEALED', 'pan', 'must be 12 to 19 digits');
    const data = Buffer.from(pan, 'latin1');
    try {
      const { iv, ciphertext } = await this.hsm.encryptData({ key: this.dataKey, data });
      return `v1:${Buffer.from(iv).toString('hex').toUpperCase()}:${Buffer.from(ciphertext).toString('hex').toUpperCase()}`;
    } finally {
      data.fill(0);
    }
  }

  async open(sealed: string): Promise<string> {
    const m = SEALED.exec(sealed);
    if (!m) throw new AcquirerError('ACQUIRER_PAN_SEALED', 'pan_sealed', 'is not a v1 sealed PAN');
    let clear: Uint8Array;
    try {
      clear = await this.hsm.decryptData({
        key: this.dataKey,
        iv: Buffer.from(m[1]!, 'hex'),
        ciphertext: Buffer.from(m[2]!, 'hex'),
      });
    } catch (e) {
      // The HSM refused the ciphertext itself (its padding or length): the row, not the HSM, is at fault.
      const code = (e as { code?: unknown }).code;
      if (code === 'HSM_DATA_PADDING' || code === 'HSM_DATA_LENGTH')
        throw new AcquirerError(
          'ACQUIRER_PAN_SEALED',
          'pan_sealed',
          'does not open (altered, or another key)',
        );
      throw e;
    }
    try {
      const pan = Buffer.from(clear).toString('latin1');
      if (!PAN.test(pan))
        throw new AcquirerError(
          'ACQUIRER_PAN_SEALED',
          'pan_sealed',
          'does not open to a PAN (altered, or another key)',
        );
      return pan;
    } finally {
      clear.fill(0);
    }
  }
}
