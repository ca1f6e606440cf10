export * from './errors.js';
export * from './bytes.js';
export * from './cipher.js';
export * from './cmac.js';
export * from './kcv.js';
export * from './pinblock.js';
export * from './pinverify.js';
export * from './mac.js';
