export { main, type Io } from './main.js';
export { CLI_ERROR_CODES, CliError, type CliErrorCode } from './errors.js';
export { runCryptoRequest } from './crypto-ops.js';
