/**
 * Writes of one turn of the event loop in one system call. On loopback and LAN links a `write(2)` per
 * small frame costs more than the frame's own work (the kernel also delivers the segment to the reader
 * inside the writer's call), and a busy host answers many requests per turn: the socket is corked at
 * the turn's first write and uncorked on the next tick, after the microtasks that made the other
 * writes of the turn, so they leave together. Nothing waits for a timer: latency is unchanged.
 */
import type { Socket } from 'node:net';

/** A writer for `socket` that coalesces the writes of each tick; returns `socket.write`'s answer. */
export function tickWriter(socket: Socket): (bytes: Uint8Array) => boolean {
  let corked = false;
  const uncork = (): void => {
    corked = false;
    if (!socket.destroyed) socket.uncork();
  };
  return (bytes) => {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return socket.write(bytes);
  };
}
