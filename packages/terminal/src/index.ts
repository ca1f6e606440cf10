/**
 * @openposp/terminal: the POS terminal (刷卡機) and its PIN pad (密码键盘) on the UnionPay terminal leg.
 */
export * from './errors.js';
export * from './pinpad.js';
export * from './card.js';
export * from './config.js';
export { TERMINAL_MIGRATIONS } from './migrations.js';
export * from './settlement.js';
export * from './slip.js';
export * from './terminal.js';
