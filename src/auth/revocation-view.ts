/**
 * This process's view of credential revocations (SPEC §2 logout: "revoked everywhere"; SPEC §6
 * `disconnect` with `revoke`).
 *
 * Revoked sessions are learned from the control channel (every process hears every logout),
 * from this process's own revokes and from the store's answers, and are answered locally from
 * then on (bounded, oldest forgotten first — a forgotten one is asked again: still revoked in
 * the store). A revoked session never becomes valid again, so this part is always safe.
 *
 * "Not revoked" is kept only behind the **revocation fence** (broker.ts `ControlFence`, one Redis):
 * - a revoker answers only `windowMs` after its control message was taken by Redis
 *   (`afterRevocation`);
 * - a kept "not revoked" is used only while the fence is `current` — a canary this process sent
 *   less than `windowMs` ago has come back on the control link, so every control message Redis
 *   took before it (every revocation already answered elsewhere) has been heard here — and only
 *   while the control link has not broken since the read that produced it was sent;
 * - a read answered after a revocation was heard here (any session or user) is not kept, and hearing
 *   one forgets what it revokes;
 * - where machines' windows differ, the revoker waits the longest listed and this process trusts the
 *   shortest (auth/fence-windows.ts).
 * Without a fence (no Redis, a Redis Cluster, REVOCATION_FENCE_MS=0) every check that is not a known
 * revocation is a store read sent after it was asked (test/revocation-view.test.ts: B refuses a
 * session right after the logout at A answered, with and without the fence).
 */
import type { ControlFence } from "../broker/broker.ts";
import type { FenceWindows } from "./fence-windows.ts";
import type { Announcement, CredentialRevocationStore, RevocationStore, RevokedBy } from "../stores/stores.ts";

/** A credential found not revoked by a read, and the control link's continuity when the read was sent. */
interface Clear {
  userId: string;
  iatS: number;
  continuity: number;
}

export class RevocationView implements RevocationStore, CredentialRevocationStore {
  private readonly revoked = new Set<string>();
  /** Sessions found not revoked, kept behind the fence (empty without one). */
  private readonly clear = new Map<string, Clear>();
  /** Revocations heard so far: a read that overlapped one is not kept. */
  private heardCount = 0;
  /** Checks answered here / by the store / from a kept "not revoked" (the `switchboard_revocation_checks_total` metric). */
  hits = 0;
  reads = 0;
  kept = 0;

  constructor(
    private readonly store: RevocationStore,
    /** Both checks of a credential at once, on the same data as `store`. */
    private readonly both: CredentialRevocationStore,
    private readonly fence?: ControlFence,
    /** Every machine's window (auth/fence-windows.ts); absent: all machines share this one's. */
    private readonly windows?: FenceWindows,
    private readonly maxEntries = 100_000,
    private readonly maxClear = 10_000,
  ) {}

  revoke(sid: string, ttlS: number, announcement?: Announcement): Promise<boolean> {
    this.heard(sid);
    return this.store.revoke(sid, ttlS, announcement);
  }

  async isRevoked(sid: string): Promise<boolean> {
    if (this.revoked.has(sid)) {
      this.hits++;
      return true;
    }
    this.reads++;
    if (!(await this.store.isRevoked(sid))) return false;
    this.heard(sid);
    return true;
  }

  /**
   * A credential's session and user checked together (each handshake): a session known revoked
   * here is answered at once, a kept "not revoked" while the fence holds; otherwise one store
   * question, and what it says learned.
   */
  revokedBy(sid: string | null, userId: string, iatS: number): Promise<RevokedBy> {
    const known = this.revokedByNow(sid, userId, iatS);
    if (known !== undefined) return Promise.resolve(known);
    if (sid === null) return this.both.revokedBy(sid, userId, iatS);
    const fence = this.fence;
    if (fence === undefined) {
      this.reads++;
      return this.both.revokedBy(sid, userId, iatS).then((by) => this.learned(sid, by));
    }
    const continuity = fence.continuity();
    this.reads++;
    const heardBefore = this.heardCount;
    return this.both.revokedBy(sid, userId, iatS).then((by) => {
      if (by === null && continuity !== null && heardBefore === this.heardCount && fence.continuity() === continuity) this.keep(sid, { userId, iatS, continuity });
      return this.learned(sid, by);
    });
  }

  /**
   * `revokedBy`'s answer when it needs no read: a session known revoked here, or a kept "not
   * revoked" while the fence holds (the same rules, checked now). Undefined: a read is needed.
   */
  revokedByNow(sid: string | null, userId: string, iatS: number): RevokedBy | undefined {
    if (sid === null) return undefined;
    if (this.revoked.has(sid)) {
      this.hits++;
      return "session";
    }
    const fence = this.fence;
    if (fence === undefined) return undefined;
    fence.wanted();
    const continuity = fence.continuity();
    const clear = this.clear.get(sid);
    if (clear !== undefined && continuity !== null && clear.continuity === continuity && clear.userId === userId && clear.iatS === iatS && fence.current(this.windows?.trustMs)) {
      this.kept++;
      return null;
    }
    return undefined;
  }

  private keep(sid: string, clear: Clear): void {
    this.clear.delete(sid);
    this.clear.set(sid, clear);
    if (this.clear.size > this.maxClear) this.clear.delete(this.clear.keys().next().value!);
  }

  private learned(sid: string, by: RevokedBy): RevokedBy {
    if (by === "session") this.heard(sid);
    return by;
  }

  /** The control channel (or this process) says the session is revoked. */
  heard(sid: string): void {
    this.heardCount++;
    this.clear.delete(sid);
    this.revoked.delete(sid);
    this.revoked.add(sid);
    if (this.revoked.size > this.maxEntries) this.revoked.delete(this.revoked.values().next().value!);
  }

  /** The control channel (or this process) says the user's credentials up to some second are revoked. */
  heardUser(userId: string): void {
    this.heardCount++;
    for (const [sid, clear] of this.clear) if (clear.userId === userId) this.clear.delete(sid);
  }

  /**
   * Resolves when a revocation whose control message Redis has taken may be answered: every process
   * whose fence is current from then on has heard it. At once without a fence. Rejects `unavailable`
   * when this process could not learn the other machines' windows (fence-windows.ts).
   */
  async afterRevocation(): Promise<void> {
    if (this.fence === undefined) return;
    await Bun.sleep(this.windows === undefined ? this.fence.windowMs : await this.windows.revokerWaitMs());
  }

  /** Revoked as far as this process knows (no I/O). */
  known(sid: string): boolean {
    return this.revoked.has(sid);
  }
}
