/**
 * Session revocation on this process's sockets: a logout here closes the session's sockets at once
 * and tells every other process over the control channel; a `revoke-session` heard from another
 * closes them here. After a break of the control link a logout may have gone unheard (Redis
 * pub/sub is at most once): every open socket's session is then asked again, until the store has
 * answered for each (a question that fails, the store not reachable yet, is asked again).
 */
import type { Services } from "../services.ts";
import type { ControlMessage } from "../broker/broker.ts";
import { Close } from "../protocol/codes.ts";
import type { Registry } from "./registry.ts";
import type { Socket } from "./connection-host.ts";

/** How long a recheck waits before asking again for the sessions whose question failed. */
export const RECHECK_RETRY_MS = 1000;

export class SessionRevocation {
  private rechecking = false;
  /** Another break came while a recheck ran: it asks for every session again. */
  private again = false;
  private closed = false;

  constructor(
    private readonly services: Pick<Services, "broker" | "stores" | "revocations">,
    private readonly registry: Registry<Socket>,
  ) {}

  /**
   * Revokes a session everywhere: its sockets on every machine close with 4001. Resolves once every
   * machine refuses it (after the revocation fence's window, where there is one).
   */
  async revoke(sid: string, ttlS: number): Promise<void> {
    const message: ControlMessage = { type: "revoke-session", sid };
    // Behind the fence the control message goes out in the write's own transaction: a machine that
    // kept the session "not revoked" hears of it whenever it is stored, even if this process then fails.
    const announced = await this.services.stores.revocations.revoke(sid, ttlS, this.services.broker.fence?.announcement(message));
    this.closeSession(sid);
    if (!announced) await this.services.broker.sendControl(message);
    await this.services.revocations.afterRevocation();
  }

  /**
   * Every control message, before anything acts on it: a session's revocation closes its sockets
   * here; a user's (a `disconnect` call with `revoke`) forgets the "not revoked" kept for that user.
   */
  heardControl(message: ControlMessage): void {
    if (message.type === "revoke-session") this.heard(message.sid);
    else if (message.type === "revoke-user") this.services.revocations.heardUser(message.user);
    else if (message.type === "call" && message.call.op === "disconnect" && message.call.revoke) this.services.revocations.heardUser(message.call.user);
  }

  /** Another process revoked the session (its control message). */
  heard(sid: string): void {
    this.services.revocations.heard(sid);
    this.closeSession(sid);
  }

  /**
   * Asks the store again for every open socket's session; the revoked ones close with 4001. A
   * question that fails is asked again every RECHECK_RETRY_MS while the session has sockets here:
   * the logout it stands in for was missed, and nothing else would close them. A recheck asked for
   * while one runs (a later break) makes it start over with every session.
   */
  async recheck(): Promise<void> {
    if (this.rechecking) {
      this.again = true;
      return;
    }
    this.rechecking = true;
    try {
      let pending = this.registry.sessions();
      while (!this.closed && (pending.length > 0 || this.again)) {
        if (this.again) pending = this.registry.sessions();
        this.again = false;
        pending = await this.unanswered(pending);
        if (pending.length > 0 && !this.again) await Bun.sleep(RECHECK_RETRY_MS);
        pending = pending.filter((sid) => this.registry.withSession(sid).length > 0);
      }
    } finally {
      this.rechecking = false;
    }
  }

  /** Stops a recheck that is retrying (the gateway closes). */
  close(): void {
    this.closed = true;
  }

  /** Asks for each session, closes the revoked ones' sockets; resolves with those whose question failed. */
  private async unanswered(sids: string[]): Promise<string[]> {
    const failed: string[] = [];
    await Promise.all(
      sids.map(async (sid) => {
        try {
          if (await this.services.revocations.isRevoked(sid)) this.closeSession(sid);
        } catch {
          failed.push(sid);
        }
      }),
    );
    return failed;
  }

  private closeSession(sid: string): void {
    for (const conn of this.registry.withSession(sid)) conn.close(Close.unauthorized, "session revoked");
  }
}
