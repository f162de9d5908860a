/**
 * This process's view of session revocations (SPEC §2 logout: "revoked everywhere").
 *
 * Revoked sessions are learned from the control channel (every process hears every logout),
 * from this process's own revokes and from the store's answers, and are answered locally from
 * then on (bounded, oldest forgotten first — a forgotten one is asked again: still revoked in
 * the store). A revoked session never becomes valid again, so this part is always safe.
 *
 * "Not revoked" is never answered from memory: a logout at another machine answers 204 as soon
 * as Redis has the revocation, and this process may read the control message a few ms after an
 * upgrade that arrived meanwhile. Only a store read that starts after the logout is sure to see
 * it (test/revocation-view.test.ts failed with a 500 ms "not revoked" cache: B accepted a session
 * right after the logout at A had answered). The reads are cheap instead: the Redis data
 * connection pipelines every command of one tick into one write.
 */
import type { CredentialRevocationStore, RevocationStore, RevokedBy } from "../stores/stores.ts";

export class RevocationView implements RevocationStore, CredentialRevocationStore {
  private readonly revoked = new Set<string>();
  /** Checks answered here / by the store (the `switchboard_revocation_checks_total` metric). */
  hits = 0;
  reads = 0;

  constructor(
    private readonly store: RevocationStore,
    /** Both checks of a credential at once, on the same data as `store`. */
    private readonly both: CredentialRevocationStore,
    private readonly maxEntries = 100_000,
  ) {}

  async revoke(sid: string, ttlS: number): Promise<void> {
    this.heard(sid);
    await this.store.revoke(sid, ttlS);
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
   * here is answered at once; otherwise one store question, and a revoked session learned from it.
   */
  revokedBy(sid: string | null, userId: string, iatS: number): Promise<RevokedBy> {
    if (sid !== null) {
      if (this.revoked.has(sid)) {
        this.hits++;
        return Promise.resolve("session");
      }
      this.reads++;
    }
    const answer = this.both.revokedBy(sid, userId, iatS);
    return sid === null ? answer : answer.then((by) => this.learned(sid, by));
  }

  private learned(sid: string, by: RevokedBy): RevokedBy {
    if (by === "session") this.heard(sid);
    return by;
  }

  /** The control channel (or this process) says the session is revoked. */
  heard(sid: string): void {
    this.revoked.delete(sid);
    this.revoked.add(sid);
    if (this.revoked.size > this.maxEntries) this.revoked.delete(this.revoked.values().next().value!);
  }

  /** Revoked as far as this process knows (no I/O). */
  known(sid: string): boolean {
    return this.revoked.has(sid);
  }
}
