/**
 * AUTH_CONNECT_URL (SPEC §4): for apps whose session cookie is opaque, the app decides who an
 * upgrade is for. `POST` with the request's `Cookie` header and nothing else of it, plus a
 * `Switchboard-Signature` over the body `{}`:
 * - 200 `{user:{id,name}, caps?, expiresIn?, session?}` → an identity (expiring `expiresIn` s from
 *   the answer; `session`, the app's session id, is what logout revokes);
 * - 401 / 403 → null: the upgrade gets 401;
 * - no answer within AUTH_CONNECT_TIMEOUT_MS, a 5xx, any other status or a bad body → throws
 *   `unavailable` (503): the app's outage is not the user's fault.
 * Accepted answers are cached per exact cookie text for AUTH_CONNECT_CACHE_S, never past
 * `expiresIn`; refusals and failures are not cached (a user who just signed in keeps the same
 * session cookie in many frameworks). Identical lookups in flight share one request. Neither the
 * cookie nor the app's answer is ever logged.
 */
import { z } from "zod";
import { createHash } from "node:crypto";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { parseJson } from "../protocol/parse.ts";
import { Caps } from "./caps.ts";
import { USER_ID, USER_ID_RULE, displayName, idText, type AppIdentity } from "./claims.ts";
import { SIGNATURE_HEADER, signatureHeader } from "./signature.ts";
import { readBounded } from "./read-bounded.ts";
import { addressKey } from "../budgets/address-key.ts";

/** A Cookie header longer than this is not sent anywhere (browsers keep theirs well below). */
export const MAX_COOKIE_CHARS = 8192;
const MAX_ANSWER_BYTES = 64 * 1024;
const CACHE_SIZE = 10_000;
const BODY = "{}";
const MAX_SESSION_CHARS = 1024;

/**
 * The app's answer. An optional field may also be null (left out): many serializers (Pydantic,
 * Jackson) write an absent optional as null, and a token's null caps claim means none too.
 */
const Answer = z.object({
  user: z.object({
    // A whole number is its decimal text, as in a token's claim (claims.ts `idText`): `{id: request.user.id}`.
    id: z.unknown().transform(idText).pipe(z.string({ error: USER_ID_RULE }).regex(USER_ID, { error: USER_ID_RULE })),
    // Whatever it is: a name that is not one falls back to the id, as a token's name claim does.
    name: z.unknown().optional(),
  }),
  caps: Caps.nullish(),
  // Cut to whole seconds (never past what the app said): `expiry - now` is often fractional.
  expiresIn: z.number().min(1).max(30 * 86_400).transform(Math.floor).nullish(),
  // The app's own session id (text, or a whole number as its decimal text): what logout revokes.
  session: z.unknown().transform(idText).pipe(z.string().min(1).max(MAX_SESSION_CHARS)).nullish(),
});

/**
 * The session id of a connect-confirmed cookie: the app's session when its answer names one, so
 * that logout revokes exactly that session whatever else the Cookie header carries; otherwise the
 * Cookie text itself (any other cookie changing makes a new one). Hashed: an app's session id is
 * often its session cookie's value, a secret that must not reach Redis or the logs.
 */
function sessionId(cookie: string, appSession: string | null | undefined): string {
  const named = appSession !== null && appSession !== undefined;
  const digest = createHash("sha256").update(named ? `session:${appSession}` : cookie).digest("base64url").slice(0, 22);
  return named ? `connect:s:${digest}` : `connect:${digest}`;
}

type ConnectConfig = Pick<Config, "authConnectUrl" | "authConnectTimeoutMs" | "authConnectCacheS" | "webhookSecret" | "maxConnectionsPerIp">;

export class ConnectClient {
  private readonly cache = new Map<string, { identity: AppIdentity; until: number }>();
  private readonly inFlight = new Map<string, Promise<AppIdentity | null>>();
  /** Calls to the app in flight per client address (see identify). */
  private readonly asking = new Map<string, number>();
  private readonly now: () => number;

  constructor(
    private readonly config: ConnectConfig & { authConnectUrl: string; webhookSecret: string },
    private readonly options: { log: Logger; now?: () => number },
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Builds a client when AUTH_CONNECT_URL is set (config checks already require WEBHOOK_SECRET). */
  static from(config: ConnectConfig, options: { log: Logger; now?: () => number }): ConnectClient | null {
    if (config.authConnectUrl === undefined || config.webhookSecret === undefined) return null;
    return new ConnectClient({ ...config, authConnectUrl: config.authConnectUrl, webhookSecret: config.webhookSecret }, options);
  }

  /**
   * The app's identity for this Cookie header; null when the app refuses it. Throws `unavailable`.
   * Any cookie text not answered yet is a new call to the app, so one address may have at most
   * MAX_CONNECTIONS_PER_IP of them in flight; past it `rate_limited` (429) and the app is not
   * asked. Without it one client with junk cookie texts kept hundreds of signed calls waiting and
   * everyone else's sign-ins timed out (SPEC §8: nobody else notices).
   */
  async identify(cookie: string, ip = "unknown"): Promise<AppIdentity | null> {
    if (cookie.length === 0 || cookie.length > MAX_COOKIE_CHARS) return null;
    const cached = this.cache.get(cookie);
    if (cached !== undefined) {
      if (cached.until > this.now()) return cached.identity;
      this.cache.delete(cookie);
    }
    let pending = this.inFlight.get(cookie);
    if (pending === undefined) {
      const from = addressKey(ip); // an IPv6 client by its /64
      const asking = this.asking.get(from) ?? 0;
      if (asking >= this.config.maxConnectionsPerIp) {
        throw new SwitchboardError(ErrorCode.rateLimited, "too many sign-ins from this address at once; retry shortly", 1);
      }
      this.asking.set(from, asking + 1);
      pending = this.ask(cookie).finally(() => {
        this.inFlight.delete(cookie);
        const left = (this.asking.get(from) ?? 1) - 1;
        if (left <= 0) this.asking.delete(from);
        else this.asking.set(from, left);
      });
      this.inFlight.set(cookie, pending);
    }
    return pending;
  }

  private async ask(cookie: string): Promise<AppIdentity | null> {
    const sentAt = this.now();
    const answer = await this.post(cookie);
    if (answer === null) return null;
    const nowS = Math.floor(sentAt / 1000);
    const expiresIn = answer.expiresIn ?? null;
    const identity: AppIdentity = {
      user: { id: answer.user.id, name: displayName(answer.user.name, answer.user.id) },
      caps: answer.caps ?? undefined,
      exp: expiresIn === null ? null : nowS + expiresIn,
      iat: nowS,
      sid: sessionId(cookie, answer.session),
      via: "connect",
    };
    const ttlMs = Math.min(this.config.authConnectCacheS * 1000, (expiresIn ?? Infinity) * 1000);
    if (ttlMs > 0) this.remember(cookie, identity, sentAt + ttlMs);
    return identity;
  }

  private remember(cookie: string, identity: AppIdentity, until: number): void {
    if (this.cache.size >= CACHE_SIZE) {
      const nowMs = this.now();
      for (const [key, entry] of this.cache) if (entry.until <= nowMs) this.cache.delete(key);
      if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    }
    this.cache.set(cookie, { identity, until });
  }

  /** One signed request; null for 401/403; throws `unavailable` for everything that is not an answer. */
  private async post(cookie: string): Promise<z.infer<typeof Answer> | null> {
    let res: Response;
    let text: string | null;
    try {
      res = await fetch(this.config.authConnectUrl, {
        method: "POST",
        redirect: "manual",
        headers: {
          "Content-Type": "application/json",
          // A framework's auth guard (Laravel, Devise) answers JSON callers 401; others get a 302 to its login page.
          Accept: "application/json",
          Cookie: cookie,
          [SIGNATURE_HEADER]: signatureHeader(this.config.webhookSecret, BODY),
        },
        body: BODY,
        signal: AbortSignal.timeout(this.config.authConnectTimeoutMs),
      });
      if (res.status === 401 || res.status === 403) {
        await res.body?.cancel();
        return null;
      }
      if (res.status !== 200) {
        await res.body?.cancel();
        throw this.unavailable(`answered ${res.status}`);
      }
      text = await readBounded(res, MAX_ANSWER_BYTES);
    } catch (error) {
      if (error instanceof SwitchboardError) throw error;
      const timedOut = (error as { name?: string } | null)?.name === "TimeoutError";
      throw this.unavailable(timedOut ? `no answer within ${this.config.authConnectTimeoutMs} ms` : "unreachable");
    }
    const parsed = text !== null ? Answer.safeParse(parseJson(text)) : null;
    if (parsed === null || !parsed.success) throw this.unavailable("answered 200 with a body that is not {user:{id,name}, caps?, expiresIn?, session?}");
    return parsed.data;
  }

  /** Logged once per failure with what went wrong — never the cookie or the app's answer. */
  private unavailable(why: string): SwitchboardError {
    this.options.log.warn(`AUTH_CONNECT_URL ${why}; upgrade refused with 503`, { url: new URL(this.config.authConnectUrl).origin });
    return new SwitchboardError(ErrorCode.unavailable, "the application could not confirm the session; try again later");
  }
}
