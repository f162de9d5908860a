/**
 * Session revocation on this process's sockets: a logout here closes the session's sockets at once
 * and tells every other process over the control channel; a `revoke-session` heard from another
 * closes them here. After a break of the control link a logout may have gone unheard (Redis
 * pub/sub is at most once): every open socket's session is then asked again.
 */
import type { Services } from "../services.ts";
import type { ControlMessage } from "../broker/broker.ts";
import { Close } from "../protocol/codes.ts";
import type { Registry } from "./registry.ts";
import type { Socket } from "./connection-host.ts";

export class SessionRevocation {
  private rechecking = false;

  constructor(
    private readonly services: Pick<Services, "broker" | "stores" | "revocations">,
    private readonly registry: Registry<Socket>,
  ) {}

  /**
   * Revokes a session everywhere: its sockets on every machine close with 4001. Resolves once every
   * machine refuses it (after the revocation fence's window, where there is one).
   */
  async revoke(sid: string, ttlS: number): Promise<void> {
    await this.services.stores.revocations.revoke(sid, ttlS);
    this.closeSession(sid);
    await this.services.broker.sendControl({ type: "revoke-session", sid });
    await this.services.revocations.afterRevocation();
  }

  /**
   * Every control message, before anything acts on it: a session's revocation closes its sockets
   * here; a user's (a `disconnect` call with `revoke`) forgets the "not revoked" kept for that user.
   */
  heardControl(message: ControlMessage): void {
    if (message.type === "revoke-session") this.heard(message.sid);
    else if (message.type === "call" && message.call.op === "disconnect" && message.call.revoke) this.services.revocations.heardUser(message.call.user);
  }

  /** Another process revoked the session (its control message). */
  heard(sid: string): void {
    this.services.revocations.heard(sid);
    this.closeSession(sid);
  }

  /** Asks the store again for every open socket's session; the revoked ones close with 4001. */
  async recheck(): Promise<void> {
    if (this.rechecking) return;
    this.rechecking = true;
    try {
      await Promise.all(
        this.registry.sessions().map(async (sid) => {
          if (await this.services.revocations.isRevoked(sid).catch(() => false)) this.closeSession(sid);
        }),
      );
    } finally {
      this.rechecking = false;
    }
  }

  private closeSession(sid: string): void {
    for (const conn of this.registry.withSession(sid)) conn.close(Close.unauthorized, "session revoked");
  }
}
