/**
 * The one credential check (SPEC §2, §3): every route and the upgrade ask here who a request is.
 * A request presents credentials (a ticket, a bearer or first-message token, a session cookie);
 * the identity sources are tried in order, and the first whose credential is present decides
 * alone — a bad ticket is refused even when a good cookie comes with it, as the SPEC says.
 * Then the revocation check. Nothing presented at all is `null`: anonymous, not refused.
 *
 * Adding a way to authenticate (an app's JWKS or HS256 tokens, the app's own cookie, an
 * AUTH_CONNECT_URL call) is adding an IdentitySource to the list; adding a revocation rule
 * (per user, by `iat`) is adding to `isRevoked`.
 */
import type { Caps } from "./caps.ts";
import type { User } from "../protocol/frames.ts";
import type { CredentialRevocationStore } from "../stores/stores.ts";

/** How a socket or request authenticated; also the `auth` label of the connection metrics. */
export type Via = "cookie" | "ticket" | "token" | "app-token" | "app-cookie" | "connect";

/** Who a request or socket is, once a source has checked its credential. */
export interface Identity {
  user: User;
  /** The session the credential belongs to (what logout revokes), when it has one. */
  sid: string | null;
  /** When the credential expires, epoch seconds; null when it does not limit the socket's life. */
  exp: number | null;
  /** When the credential was issued, epoch seconds, when known (per-user revocation compares it). */
  iat: number | null;
  /** What the credential allows, when it carries capabilities (SPEC §5); null: the default rules. */
  caps: Caps | null;
  via: Via;
}

/**
 * The key a per-session budget counts under (TICKETS_PER_MIN, a cookie's presence reads; SPEC §8).
 * A connect identity's session is the exact Cookie text the app confirmed: junk appended to the
 * header makes a new one at will (the app reads only its own cookie), so those count per user.
 */
export function budgetKeyOf(identity: Identity): string {
  return identity.via !== "connect" && identity.sid !== null ? identity.sid : `user:${identity.user.id}`;
}

/** The credentials a request presents, as found and not yet checked. Absent: not presented. */
export interface Presented {
  /** `?ticket=` of an upgrade (an empty one is presented, and invalid). */
  ticket?: string;
  /** A bearer token (`Authorization: Bearer`) or a first-message `auth` token. */
  token?: string;
  /** The whole Cookie header. */
  cookie?: string;
  /**
   * The request came over https (SPEC §8): only the `__Host-` session cookie is read, so a plain
   * cookie planted from a sibling subdomain or over http is ignored.
   */
  secure?: boolean;
  /** The client's address (TRUST_PROXY): bounds the app's connect calls in flight per address. */
  ip?: string;
}

/** Why a presented credential was refused: a metric label and a sentence for the client. */
export interface Refusal {
  reason: string;
  message: string;
}

export type Outcome = { ok: true; identity: Identity } | ({ ok: false } & Refusal);

export interface IdentitySource {
  /** The credential this source checks, when the request presents one; else null (next source). */
  find(presented: Presented): string | null;
  /** The identity the credential stands for; null when it is unknown, forged, expired or used. */
  check(credential: string, presented?: Presented): Promise<Identity | null>;
  /** `check` without a promise when the answer is known here (a credential verified before); undefined: ask `check`. */
  checkNow?(credential: string): Identity | undefined;
  /** What a refusal of this source's credential says. */
  readonly refusal: Refusal;
}

export interface CredentialsOptions {
  /** Tried in this order; the first that finds its credential decides. */
  sources: IdentitySource[];
  /** Session revocation (logout) and per-user revocation by issue time (`/api/disconnect` with `revoke`). */
  revocations: CredentialRevocationStore;
  /** Told about every refused credential (metrics, log); never given the credential itself. */
  onRefused?(reason: string, fields: Record<string, unknown>): void;
}

export class Credentials {
  constructor(private readonly options: CredentialsOptions) {}

  /**
   * The identity of the first presented credential, a refusal, or null when none is presented.
   * Rejects (with `unavailable` from the stores) when the revocation store cannot be reached.
   */
  async identify(presented: Presented): Promise<Outcome | null> {
    for (const source of this.options.sources) {
      const credential = source.find(presented);
      if (credential === null) continue;
      const identity = await source.check(credential, presented);
      // Refused when its session was revoked (logout), or its user at or after its `iat`
      // (`/api/disconnect` with `revoke`). A credential without `iat` cannot show it came later:
      // it counts as issued before any revocation of its user (fail closed). Asked inline, not
      // through a helper: one async frame fewer on every handshake.
      if (identity !== null && (await this.options.revocations.revokedBy(identity.sid, identity.user.id, identity.iat ?? 0)) === null) return { ok: true, identity };
      return { ok: false, ...source.refusal };
    }
    return null;
  }

  /**
   * `identify` without a promise, for the upgrade (http/ws.ts): the same answer when the first
   * presented credential was verified before and its revocation check needs no read (a session known
   * revoked here, or a kept "not revoked" behind the fence: auth/revocation-view.ts); undefined when
   * only `identify` can tell. Nothing presented is `null`, as there.
   */
  identifyNow(presented: Presented): Outcome | null | undefined {
    for (const source of this.options.sources) {
      const credential = source.find(presented);
      if (credential === null) continue;
      const identity = source.checkNow?.(credential);
      if (identity === undefined) return undefined;
      const by = this.options.revocations.revokedByNow?.(identity.sid, identity.user.id, identity.iat ?? 0);
      if (by === undefined) return undefined;
      return by === null ? { ok: true, identity } : { ok: false, ...source.refusal };
    }
    return null;
  }

  /** Counts and logs a refused authentication. `fields` never carry the credential itself. */
  refused(reason: string, fields: Record<string, unknown> = {}): void {
    this.options.onRefused?.(reason, fields);
  }
}
