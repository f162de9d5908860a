/**
 * The backstop for `/api/disconnect` with `revoke` (SPEC §6): the call reaches other machines over
 * pub/sub, which is at-most-once — a machine whose Redis link was down at that moment never hears
 * it. Every `intervalMs` each process reads the users revoked in the last `windowS` seconds (one
 * command) and closes, with 4003, its open sockets of those users whose credential was issued at
 * or before the revoke (a credential without `iat` counts as older, as in Credentials.isRevoked).
 * Closing is idempotent, so a revoke seen by both the call and the watch closes once. The window
 * is wide enough to absorb clock differences between machines; after passes that failed, the next
 * one reads from the last that succeeded (minus the window).
 */
import { Close } from "../protocol/codes.ts";
import type { UserRevocationStore } from "../stores/stores.ts";
import type { Socket } from "./connection-host.ts";
import { every } from "../shared-clock.ts";

export interface RevocationWatchOptions {
  store: UserRevocationStore;
  socketsOf(userId: string): Socket[];
  log(message: string, fields: Record<string, unknown>): void;
  intervalMs?: number;
  windowS?: number;
}

export class RevocationWatch {
  /** Stops the passes (shared-clock.ts). */
  private stopPasses: (() => void) | null = null;
  private running = false;
  private failing = false;
  /**
   * `nowS` of the last pass that read (null before the first): a pass after failing ones reads from
   * there, so a revocation made while this process could not read is not skipped, however long that
   * lasted (its link down for longer than the window).
   */
  private lastReadS: number | null = null;

  constructor(private readonly options: RevocationWatchOptions) {}

  start(): void {
    this.stopPasses = every(this.options.intervalMs ?? 2000, () => void this.check());
  }

  /** One pass; never rejects. Resolves with how many sockets it closed. */
  async check(nowS = Math.floor(Date.now() / 1000)): Promise<number> {
    if (this.running) return 0;
    this.running = true;
    let closed = 0;
    try {
      const revoked = await this.options.store.revokedSince(Math.min(nowS, this.lastReadS ?? nowS) - (this.options.windowS ?? 120));
      this.lastReadS = nowS;
      this.failing = false;
      for (const [userId, atS] of revoked) {
        for (const conn of this.options.socketsOf(userId)) {
          if (!conn.isOpen || (conn.issuedAt ?? 0) > atS) continue;
          conn.close(Close.serverDisconnect, "disconnected and revoked by the server");
          closed += 1;
        }
      }
    } catch (error) {
      if (!this.failing) this.options.log("revocation check failed; retrying", { error: error instanceof Error ? error.message : String(error) });
      this.failing = true;
    } finally {
      this.running = false;
    }
    return closed;
  }

  stop(): void {
    this.stopPasses?.();
    this.stopPasses = null;
  }
}
