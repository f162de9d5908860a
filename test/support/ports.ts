/**
 * Free loopback ports for the processes tests start (servers, redis-server, cluster nodes), safe
 * while `bun test --parallel` runs files in several workers at once.
 *
 * Binding port 0 and releasing it leaves a window before the child binds the port: another worker
 * binding port 0 meanwhile can be handed the same port, and so can any outgoing connection (a
 * Redis client, a fetch), since both come from the kernel's ephemeral range (32768–60999 here,
 * `net.ipv4.ip_local_port_range`). So each worker hands out ports only from a block of its own
 * below that range: no other worker hands them out, the kernel never picks one as a connection's
 * local port, and a port a test gives up and takes again (a restart on the same port) stays free.
 *
 * Ports 10000–19999 are split into SLOTS blocks, one per worker (`BUN_TEST_WORKER_ID`, 1…N; a run
 * without --parallel takes slot 0). 20000–29999 holds the blocks' cluster bus ports (port + 10000,
 * Redis Cluster's rule). Within a block the walk starts at a random offset, so that two separate
 * test runs on one machine seldom meet; a port something still holds is skipped.
 */
const FIRST = 10_000;
const SLOTS = 16;
const BLOCK = 10_000 / SLOTS;
/** Redis Cluster's bus listens on the client port + 10000. */
const BUS_OFFSET = 10_000;

const slot = Number(process.env.BUN_TEST_WORKER_ID ?? 0) % SLOTS;
const base = FIRST + slot * BLOCK;
let next = Math.floor(Math.random() * BLOCK);

/** A port of this worker's block that nothing listens on now. */
export function freePort(): number {
  return take((port) => canListen(port));
}

/** A port P of this worker's block such that P and its cluster bus port P + 10000 are both free. */
export function clusterPort(): number {
  return take((port) => canListen(port) && canListen(port + BUS_OFFSET));
}

function take(free: (port: number) => boolean): number {
  for (let tried = 0; tried < BLOCK; tried++) {
    const port = base + (next++ % BLOCK);
    if (free(port)) return port;
  }
  throw new Error(`no free port in ${base}–${base + BLOCK - 1} (test worker slot ${slot})`);
}

function canListen(port: number): boolean {
  try {
    Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }).stop(true);
    return true;
  } catch {
    return false;
  }
}
