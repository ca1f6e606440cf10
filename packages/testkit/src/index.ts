/**
 * @openposp/testkit: fault injection for tests and chaos runs. A seeded PRNG (xoshiro128**) and a TCP
 * proxy for length-framed messages that drops, delays, corrupts and duplicates whole messages.
 */
export {
  type Direction,
  FAULT_KINDS,
  FAULT_PROXY_DELAY_MAX_MS,
  FAULT_PROXY_FRAME_MAX_BYTES,
  FAULT_PROXY_LINGER_MS_DEFAULT,
  FAULT_PROXY_MAX_CONNECTIONS_DEFAULT,
  type FaultContext,
  type FaultCounters,
  type FaultDecision,
  type FaultKind,
  type FaultPlan,
  FaultProxy,
  type FaultProxyOptions,
  randomFaultPlan,
} from './fault-proxy.js';
export { createPrng, type Prng } from './prng.js';
