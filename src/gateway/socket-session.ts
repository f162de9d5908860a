/**
 * One socket's session: the state machine from the upgrade to `welcome` and on (SPEC §3, §4) —
 * `awaiting-auth` (a token socket before its first frame, with the AUTH_TIMEOUT_MS timer),
 * `authenticating` (its first frame being checked, or a cookie / ticket socket before its
 * welcome), `open`, `closed` — and the credential's life while open: `expiring` then 4001 at its
 * expiry (never for built-in cookie sessions), and an in-band `refresh` that replaces it.
 *
 * Functions of the socket (the Connection holds the state and the credential) rather than an
 * object of their own: an idle socket allocates nothing more (bench/README.md, idle memory).
 */
import type { User } from "../protocol/frames.ts";
import { Close } from "../protocol/codes.ts";
import type { Identity } from "../auth/credentials.ts";
import type { Caps } from "../auth/caps.ts";
import { checkFirstMessage } from "./first-message.ts";
import { checkRefresh } from "./refresh.ts";
import { CredentialTimers } from "./expiry.ts";
import { joinInbox, joinInboxNow, leaveRefused, type TopicsSocket } from "./socket-topics.ts";

export type SessionState = "awaiting-auth" | "authenticating" | "open" | "closed";

/** The socket a session runs on: the state, the timers and the credential fields are its; these functions set them. */
export interface SessionSocket extends TopicsSocket {
  state: SessionState;
  authTimer: ReturnType<typeof setTimeout> | null;
  /** `expiring`, then 4001 at the credential's expiry; made when first set. */
  expiry: CredentialTimers | null;
  user: User | null;
  expiresAt: number | null;
  issuedAt: number | null;
  caps: Caps | null;
  /** The credential changed: the topics' join/leave frames follow its `presence` action again. */
  rereadPresence(): void;
  /** A job of the socket threw: logs it and closes with 1011 (the frame queue's own handler). */
  queueFailed(error: unknown): void;
}

/** A socket without an identity opened: it has AUTH_TIMEOUT_MS to send one (4002 otherwise). */
export function armAuthTimeout(conn: SessionSocket): void {
  conn.authTimer = setTimeout(() => {
    conn.authTimer = null;
    if (conn.state === "awaiting-auth" || (conn.state === "authenticating" && conn.user === null)) {
      conn.host.noteAuthFailure("timeout", { connectionId: conn.id, ip: conn.ip });
      conn.close(Close.authTimeout, "authentication timeout");
    }
  }, conn.host.config.authTimeoutMs);
}

/** The first frame of a socket without an identity: `auth` → welcome, or a close (first-message.ts). */
export async function authenticate(conn: SessionSocket, parsed: unknown): Promise<void> {
  conn.state = "authenticating";
  const result = await checkFirstMessage(conn.host, parsed, { connectionId: conn.id, ip: conn.ip });
  if ((conn.state as SessionState) === "closed") return;
  if ("close" in result) return conn.close(result.close, result.reason);
  if (!conn.host.admit(conn, result.identity)) return conn.close(Close.overloaded, "too many connections for this user");
  if (conn.authTimer !== null) clearTimeout(conn.authTimer);
  conn.authTimer = null;
  conn.user = result.identity.user;
  conn.expiresAt = result.identity.exp;
  conn.issuedAt = result.identity.iat;
  conn.caps = result.identity.caps;
  await welcome(conn);
}

/**
 * Joins the personal inbox (socket-topics.ts), then greets: a client that has `welcome` can
 * receive DMs. When this process already follows the inbox (another socket of the user), the join
 * is immediate and the welcome leaves in the same write as the 101 (Bun corks sends made inside
 * `open`).
 */
export function welcome(conn: SessionSocket): Promise<void> {
  return welcomeNow(conn) ? Promise.resolve() : joinInboxThenGreet(conn);
}

/**
 * `welcome` when it needs no wait (the inbox joined at once): true when sent. A socket known at
 * its upgrade tries this in `open`, before any frame of it can arrive, so the frame queue (a job,
 * a closure and an async pump per handshake) is only for the welcome that waits for the hub.
 */
export function welcomeNow(conn: SessionSocket): boolean {
  try {
    if (!joinInboxNow(conn)) return false;
    greet(conn);
  } catch (error) {
    conn.queueFailed(error); // as a failed queued job: logged, closed with 1011
  }
  return true;
}

/** An in-band `refresh` (SPEC §4): the same socket goes on with the new credential. */
export async function refresh(conn: SessionSocket, ref: number | undefined, token: string): Promise<void> {
  const verdict = await checkRefresh(conn.host, conn, token);
  if ("close" in verdict) return conn.close(verdict.close, verdict.reason);
  if (conn.state !== "open") return;
  renew(conn, verdict.identity);
  conn.sendJson({ type: "ack", ref, expiresAt: verdict.identity.exp });
}

async function joinInboxThenGreet(conn: SessionSocket): Promise<void> {
  if (!(await joinInbox(conn))) return conn.close(Close.overloaded, "broker unavailable; try again later");
  if (conn.state !== "closed") greet(conn);
}

function greet(conn: SessionSocket): void {
  const { host } = conn;
  conn.state = "open";
  if (conn.via !== "cookie") timers(conn).set(conn.issuedAt, conn.expiresAt);
  conn.sendJson({ type: "welcome", user: conn.user!, connectionId: conn.id, instance: host.config.instanceId, region: host.config.region });
  host.opened(conn);
}

/**
 * Same socket, same subscriptions and presence: only the credential changes — except the
 * subscriptions the new caps no longer grant, which it leaves (socket-topics.ts).
 */
function renew(conn: SessionSocket, identity: Identity & { exp: number }): void {
  conn.host.renewed(conn, identity);
  conn.expiresAt = identity.exp;
  conn.issuedAt = identity.iat;
  conn.caps = identity.caps;
  timers(conn).set(identity.iat, identity.exp);
  leaveRefused(conn);
  // The new caps decide who reads join/leave frames from now on.
  conn.rereadPresence();
}

function timers(conn: SessionSocket): CredentialTimers {
  return (conn.expiry ??= new CredentialTimers(
    (expiresAt) => conn.sendJson({ type: "expiring", expiresAt }),
    () => conn.close(Close.unauthorized, "credential expired"),
  ));
}
