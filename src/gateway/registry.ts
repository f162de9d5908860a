/**
 * The open sockets of this process, indexed for the connection caps (total, per IP, per user)
 * and for closing every socket of a revoked session. Bun has no API listing open sockets.
 */
import { SmallSet } from "./small-set.ts";
import { addressKey } from "../budgets/address-key.ts";

export interface Registered {
  readonly id: string;
  readonly ip: string;
  userId: string | null;
  sid: string | null;
}

function bump(map: Map<string, number>, key: string, by: number): void {
  const next = (map.get(key) ?? 0) + by;
  if (next <= 0) map.delete(key);
  else map.set(key, next);
}

export class Registry<C extends Registered> {
  readonly all = new Set<C>();
  private readonly perIp = new Map<string, number>();
  private readonly perUser = new Map<string, number>();
  private readonly bySid = new Map<string, SmallSet<C>>();
  private readonly byUser = new Map<string, SmallSet<C>>();

  get size(): number {
    return this.all.size;
  }

  /** Sockets from `ip`, an IPv6 address counting by its /64 (budgets/address-key.ts). */
  ipCount(ip: string): number {
    return this.perIp.get(addressKey(ip)) ?? 0;
  }

  userCount(userId: string): number {
    return this.perUser.get(userId) ?? 0;
  }

  /** Counts a socket from its upgrade on, authenticated or not. */
  add(conn: C): void {
    if (this.all.has(conn)) return;
    this.all.add(conn);
    bump(this.perIp, addressKey(conn.ip), 1);
    if (conn.userId !== null) this.indexUser(conn);
  }

  /** Records who a socket turned out to be (first-message auth). */
  authenticated(conn: C, userId: string, sid: string | null): void {
    conn.userId = userId;
    conn.sid = sid;
    if (this.all.has(conn)) this.indexUser(conn);
  }

  /** The socket's credential was replaced (an in-band refresh): index it under its new session. */
  changeSession(conn: C, sid: string | null): void {
    if (conn.sid !== null) {
      const set = this.bySid.get(conn.sid);
      set?.delete(conn);
      if (set?.size === 0) this.bySid.delete(conn.sid);
    }
    conn.sid = sid;
    if (sid === null || !this.all.has(conn)) return;
    let set = this.bySid.get(sid);
    if (set === undefined) this.bySid.set(sid, (set = new SmallSet()));
    set.add(conn);
  }

  remove(conn: C): void {
    if (!this.all.delete(conn)) return;
    bump(this.perIp, addressKey(conn.ip), -1);
    if (conn.userId !== null) {
      bump(this.perUser, conn.userId, -1);
      const set = this.byUser.get(conn.userId);
      set?.delete(conn);
      if (set?.size === 0) this.byUser.delete(conn.userId);
    }
    if (conn.sid !== null) {
      const set = this.bySid.get(conn.sid);
      set?.delete(conn);
      if (set?.size === 0) this.bySid.delete(conn.sid);
    }
  }

  /** The session ids of the open sockets. */
  sessions(): string[] {
    return [...this.bySid.keys()];
  }

  withSession(sid: string): C[] {
    return [...(this.bySid.get(sid) ?? [])];
  }

  withUser(userId: string): C[] {
    return [...(this.byUser.get(userId) ?? [])];
  }

  private indexUser(conn: C): void {
    bump(this.perUser, conn.userId!, 1);
    let users = this.byUser.get(conn.userId!);
    if (users === undefined) this.byUser.set(conn.userId!, (users = new SmallSet()));
    users.add(conn);
    if (conn.sid !== null) {
      let set = this.bySid.get(conn.sid);
      if (set === undefined) this.bySid.set(conn.sid, (set = new SmallSet()));
      set.add(conn);
    }
  }
}
