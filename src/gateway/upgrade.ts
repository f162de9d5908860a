/**
 * The gateway's side of an upgrade (SPEC §3): whether this process takes one more socket, and
 * taking it. The HTTP side — Origin, who the request is — is http/ws.ts, which asks auth/ and
 * calls these. A refusal is a SwitchboardError (its HTTP status is the SPEC's) counted by reason.
 */
import type { Identity } from "../auth/credentials.ts";
import type { User } from "../protocol/frames.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { Connection } from "./connection.ts";
import { nextConnectionId } from "./connection-ids.ts";
import type { Gateway } from "./gateway.ts";
import type { SwitchboardServer } from "./socket.ts";

/** The refusals refuseUpgrade counted already. */
const counted = new WeakSet<Error>();

/** Counts a refused upgrade by reason and throws the error its response is made of. */
export function refuseUpgrade(gw: Gateway, reason: string, code: ErrorCode, message: string): never {
  gw.metrics.upgradesRejected.inc({ reason });
  const error = new SwitchboardError(code, message);
  counted.add(error);
  throw error;
}

/**
 * Counts an upgrade refused by an error refuseUpgrade did not make — a credential check that
 * could not be answered (the revocation store or the app unreachable: `unavailable`) or a bug
 * (`internal`) — by its code, so every refusal before the 101 is in the metric.
 */
export function countFailedUpgrade(gw: Gateway, error: unknown): void {
  if (error instanceof Error && counted.has(error)) return;
  gw.metrics.upgradesRejected.inc({ reason: error instanceof SwitchboardError ? error.code : ErrorCode.internal });
}

/**
 * Throws unless this process takes one more socket from `ip` (for `user`, when known): under
 * MAX_CONNECTIONS (503), under the per-IP and per-user caps (429), not draining (503). Checked
 * before and again right after the credential check (which awaits).
 */
export function checkCapacity(gw: Gateway, ip: string, user: User | null): void {
  const { config, registry } = gw;
  if (registry.size >= config.maxConnections) refuseUpgrade(gw, "max_connections", ErrorCode.overloaded, "server is at its connection limit");
  if (registry.ipCount(ip) >= config.maxConnectionsPerIp) refuseUpgrade(gw, "max_per_ip", ErrorCode.rateLimited, "too many connections from this address");
  if (user !== null && registry.userCount(user.id) >= config.maxConnectionsPerUser) {
    refuseUpgrade(gw, "max_per_user", ErrorCode.rateLimited, "too many connections for this user");
  }
  if (gw.draining) refuseUpgrade(gw, "draining", ErrorCode.unavailable, "server is restarting; connect to another machine");
}

/**
 * While the process cannot keep up (gateway.load), a new upgrade is taken only to be closed
 * with 1013 and a retry hint in the reason: the client backs off instead of piling onto a
 * process whose sockets already wait. Before the credential check: a shed socket costs no read.
 * True when the request was shed (or Bun refused it).
 */
export function shedUpgrade(gw: Gateway, server: SwitchboardServer, req: Request, ip: string): boolean {
  if (!gw.load.shouldShed()) return false;
  gw.metrics.upgradesRejected.inc({ reason: "overloaded" });
  acceptUpgrade(gw, server, req, ip, null, gw.load.retryAfterMs());
  return true;
}

/**
 * Upgrades the request to a socket for `identity` (null: it authenticates with its first frame)
 * and counts it from now on. False when Bun refused the upgrade.
 */
export function acceptUpgrade(gw: Gateway, server: SwitchboardServer, req: Request, ip: string, identity: Identity | null, shedRetryMs?: number): boolean {
  const openedAt = Date.now();
  const conn = new Connection(gw, { id: nextConnectionId(), ip, identity, retireAt: gw.retireAt(openedAt), shedRetryMs });
  if (!server.upgrade(req, { data: conn })) return false;
  gw.registry.add(conn);
  return true;
}
