export { type FramedClientOptions, FramedClient } from './client.js';
export {
  NET_CLIENT_MAX_IN_FLIGHT_DEFAULT,
  NET_CONNECT_TIMEOUT_MS_DEFAULT,
  NET_RECONNECT_DELAY_MS_DEFAULT,
  NET_RECONNECT_MAX_DELAY_MS_DEFAULT,
  NET_REQUEST_TIMEOUT_MS_DEFAULT,
} from './client.js';
export { tickWriter } from './cork.js';
export { isNetError, NET_ERROR_CODES, NetError, type NetErrorCode } from './errors.js';
export { createLogger, type Logger, type LoggerOptions, type LogLevel, maskDigits } from './log.js';
export {
  type ConnectionInfo,
  FramedServer,
  type FramedServerOptions,
  NET_CLOSE_GRACE_MS,
  NET_IDLE_TIMEOUT_MS_DEFAULT,
  NET_MAX_CONNECTIONS_DEFAULT,
  NET_MAX_IN_FLIGHT_DEFAULT,
  type ServerStats,
} from './server.js';
