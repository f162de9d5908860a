/**
 * The demo's three HTTP calls (SPEC §2): who am I, sign in, sign out. The session cookie is
 * HttpOnly: this script never sees it, the browser attaches it (same origin) to these requests
 * and to the WebSocket upgrade.
 */
import type { User } from "../../client/index.ts";

export type LoginResult =
  | { ok: true; user: User }
  | { ok: false; message: string };

/** The signed-in user, or null (401). Throws when the server cannot be reached. */
export async function currentUser(): Promise<User | null> {
  const res = await fetch("/auth/me", { credentials: "same-origin", cache: "no-store" });
  if (res.status === 401) return null;
  if (!res.ok) throw new Error(`GET /auth/me answered ${res.status}`);
  return ((await res.json()) as { user: User }).user;
}

export async function login(username: string, password: string): Promise<LoginResult> {
  let res: Response;
  try {
    res = await fetch("/auth/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
  } catch {
    return { ok: false, message: "Could not reach the server. Check your connection and try again." };
  }
  if (res.ok) return { ok: true, user: ((await res.json()) as { user: User }).user };
  if (res.status === 401) return { ok: false, message: "Wrong username or password." };
  if (res.status === 429) {
    const wait = Number(res.headers.get("retry-after"));
    const when = Number.isFinite(wait) && wait > 0 ? `in ${Math.ceil(wait / 60)} min` : "later";
    return { ok: false, message: `Too many failed attempts. Try again ${when}.` };
  }
  if (res.status === 400) return { ok: false, message: "Enter a username and a password." };
  return { ok: false, message: `Sign-in failed (${res.status}). Try again.` };
}

/**
 * Revokes the session on the server (its sockets everywhere close with 4001) and clears the
 * cookie. False when the server could not be reached or refused: the session may still be valid.
 */
export async function logout(): Promise<boolean> {
  try {
    const res = await fetch("/auth/logout", { method: "POST", credentials: "same-origin" });
    return res.ok;
  } catch {
    return false;
  }
}
