/**
 * When the gateway ends sockets on its own: the periodic sweep (an expired credential, a connection
 * past MAX_CONNECTION_AGE_S) and the drain at shutdown.
 */
import { Close } from "../protocol/codes.ts";
import type { Socket } from "./connection-host.ts";

/**
 * The periodic sweep: closes sockets whose credential expired (4001) and, with
 * MAX_CONNECTION_AGE_S, sockets past their jittered age (1012) so clients rebalance after a
 * scale-out. One pass over the sockets instead of a timer per socket.
 */
export function sweepSockets(sockets: Iterable<Socket>, nowMs: number): void {
  const nowS = Math.floor(nowMs / 1000);
  for (const conn of sockets) {
    if (!conn.isOpen) continue;
    if (conn.expiresAt !== null && conn.expiresAt < nowS) conn.close(Close.unauthorized, "session expired");
    else if (conn.retireAt !== null && conn.retireAt <= nowMs) conn.close(Close.restarting, "connection age reached; reconnect");
  }
}

/** When a socket opened at `openedAt` should be retired (MAX_CONNECTION_AGE_S ± 10 %), or null (0: never). */
export function retirementTime(openedAt: number, maxConnectionAgeS: number): number | null {
  if (maxConnectionAgeS === 0) return null;
  return openedAt + maxConnectionAgeS * 1000 * (0.9 + Math.random() * 0.2);
}

/**
 * Closes the sockets with 1012, spread evenly over `drainMs` so clients do not all reconnect in the
 * same instant: at most one batch every 20 ms, batch i at `start + i·drainMs/batches` on an
 * absolute schedule (late timers do not stretch the drain). Resolves when `remaining()` is 0, or at
 * the latest 250 ms after the window, leaving the rest of the process's bound (DRAIN_MS + 1 s) to
 * releasing presence and the broker.
 */
export async function drainSockets(sockets: readonly Socket[], drainMs: number, remaining: () => number): Promise<void> {
  const started = Date.now();
  const perBatch = Math.max(1, Math.ceil(sockets.length / Math.max(1, Math.floor(drainMs / 20))));
  const batches = Math.ceil(sockets.length / perBatch);
  for (let i = 0; i < batches; i++) {
    const wait = started + (i * drainMs) / batches - Date.now();
    if (wait > 0) await Bun.sleep(wait);
    for (const conn of sockets.slice(i * perBatch, (i + 1) * perBatch)) conn.close(Close.restarting, "server restarting");
  }
  const deadline = Math.max(started + drainMs, Date.now()) + 250;
  while (remaining() > 0 && Date.now() < deadline) await Bun.sleep(10);
}
