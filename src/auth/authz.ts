/**
 * The AUTHZ_URL client (SPEC §5, `subscribe`/`publish: "app"`): Switchboard asks the app with
 * `POST AUTHZ_URL {user:{id,name}, topic, action}`, signed like a webhook (Switchboard-Signature).
 *
 * - 200 `{allow: boolean, ttlS?}` decides; cached per user id, topic and action for `ttlS`
 *   (default 60, at most 3600, whole seconds; 0: not cached).
 * - 403 is a refusal, cached 60 s.
 * - Anything else — no answer within the timeout (2 s), a redirect, another 4xx, a 5xx, a body that
 *   is not `{allow, ttlS?}` — rejects with `unavailable` and is not cached: an outage of the app is
 *   never a refusal of the user.
 * - Identical questions in flight share one request; the cache is bounded (the oldest entry goes).
 */
import { z } from "zod";
import type { User } from "../protocol/frames.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { SIGNATURE_HEADER, signatureHeader } from "./signature.ts";
import type { AppAuthority, AppQuestion } from "./permissions.ts";
import { readBounded } from "./read-bounded.ts";

/** `ttlS: null` is `ttlS` left out, as serializers that write absent optionals as null send it. */
const Answer = z.object({ allow: z.boolean(), ttlS: z.number().min(0).nullish() });

export interface AuthzOptions {
  url: string;
  /** WEBHOOK_SECRET: signs every call. */
  secret: string;
  /** How long an answer may take, body included (2000). */
  timeoutMs?: number;
  /** Answers kept at most (10 000); past it the oldest is dropped. */
  maxEntries?: number;
  now?: () => number;
  /** Called for every call that did not decide (for logs). */
  onUnavailable?: (why: string) => void;
  /** Called once per request sent (not for cache hits or shared questions), with how it ended. */
  onAnswer?: (outcome: "allow" | "deny" | "unavailable") => void;
}

const DEFAULT_TTL_S = 60;
const MAX_TTL_S = 3600;
const DENY_TTL_S = 60;
/** An answer is a few bytes; a larger body is not one. */
const MAX_BODY_BYTES = 4096;

interface Entry {
  allow: boolean;
  expiresAt: number;
}

export class AuthzClient implements AppAuthority {
  private readonly cache = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<boolean>>();
  private readonly timeoutMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(private readonly options: AuthzOptions) {
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Entries cached now (expired ones included until they are read or pushed out). */
  get size(): number {
    return this.cache.size;
  }

  async allows(user: User, topic: string, action: AppQuestion): Promise<boolean> {
    const key = `${action} ${topic} ${user.id}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) {
      if (cached.expiresAt > this.now()) return cached.allow;
      this.cache.delete(key);
    }
    const pending = this.inFlight.get(key);
    if (pending !== undefined) return pending;
    const asked = this.ask(user, topic, action).then(
      ({ allow, ttlS }) => {
        this.options.onAnswer?.(allow ? "allow" : "deny");
        if (ttlS > 0) this.remember(key, allow, ttlS);
        return allow;
      },
      (error: unknown) => {
        this.options.onAnswer?.("unavailable");
        throw error;
      },
    );
    const settled = asked.finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, settled);
    return settled;
  }

  /** Forgets every cached answer (an app that changed its rules). */
  clear(): void {
    this.cache.clear();
  }

  private remember(key: string, allow: boolean, ttlS: number): void {
    this.cache.delete(key);
    while (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, { allow, expiresAt: this.now() + ttlS * 1000 });
  }

  private async ask(user: User, topic: string, action: AppQuestion): Promise<{ allow: boolean; ttlS: number }> {
    const body = JSON.stringify({ user: { id: user.id, name: user.name }, topic, action });
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.timeoutMs);
    try {
      const res = await fetch(this.options.url, {
        method: "POST",
        // `accept`: a framework's auth guard answers JSON callers with a status, not a redirect to its login page.
        headers: { "content-type": "application/json", accept: "application/json", [SIGNATURE_HEADER]: signatureHeader(this.options.secret, body) },
        body,
        redirect: "manual",
        signal: abort.signal,
      });
      if (res.status === 403) {
        await res.body?.cancel();
        return { allow: false, ttlS: DENY_TTL_S };
      }
      if (res.status !== 200) {
        await res.body?.cancel();
        throw this.unavailable(`the app answered ${res.status}`);
      }
      const answer = Answer.safeParse(parseOrUndefined(await readBounded(res, MAX_BODY_BYTES)));
      if (!answer.success) throw this.unavailable("the app's answer is not {allow, ttlS?}");
      return { allow: answer.data.allow, ttlS: Math.min(Math.floor(answer.data.ttlS ?? DEFAULT_TTL_S), MAX_TTL_S) };
    } catch (error) {
      if (error instanceof SwitchboardError) throw error;
      throw this.unavailable(abort.signal.aborted ? `no answer within ${this.timeoutMs} ms` : "the app cannot be reached");
    } finally {
      clearTimeout(timer);
    }
  }

  private unavailable(why: string): SwitchboardError {
    this.options.onUnavailable?.(why);
    return new SwitchboardError(ErrorCode.unavailable, `the app cannot decide now (${why}); retry`);
  }
}

function parseOrUndefined(text: string | null): unknown {
  if (text === null) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

