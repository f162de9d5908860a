/**
 * The app's or identity provider's JSON Web Key Set (AUTH_JWKS_URL, SPEC §4), kept in memory.
 *
 * Why not jose's createRemoteJWKSet as it is: its refetch cooldown (30 s) counts from the last
 * *successful* fetch, so while the provider is down every unknown `kid` fetches again, and after
 * `cacheMaxAge` (10 min) it refetches before every verification and fails them all, cached keys
 * included. Here:
 * - an unknown `kid` (or no keys yet) refetches at most once per COOLDOWN_MS, counted from the
 *   last *attempt*, whatever it gave: a flood of bogus `kid`s costs the provider one request per
 *   30 s. The fetch at start-up does not count, so a key rotated in right after start works;
 * - keys older than MAX_AGE_MS are refreshed in the background, and meanwhile still used;
 * - a failed or garbage answer keeps the keys held (a warning line says so); a good one replaces
 *   them all, so a key removed from the set stops working;
 * - only asymmetric keys (RSA, EC, OKP) are taken: a symmetric `oct` key in a JWKS cannot turn
 *   into an HMAC secret (HS/RS confusion).
 * jose's createLocalJWKSet does the matching by `kid`, `alg`, `kty`, `use` and `key_ops`.
 */
import type { JSONWebKeySet, JWSHeaderParameters, FlattenedJWSInput } from "jose";
import { createLocalJWKSet } from "jose/jwks/local";
import { JWKSNoMatchingKey } from "jose/errors";
import type { Logger } from "../log.ts";
import { errorFields } from "../log.ts";
import { readBounded } from "./read-bounded.ts";

export const COOLDOWN_MS = 30_000;
const MAX_AGE_MS = 10 * 60_000;
const FETCH_TIMEOUT_MS = 5000;
/** A key set is a few kilobytes; a larger answer is not one. */
const MAX_BYTES = 512 * 1024;
const MAX_KEYS = 100;

type LocalSet = ReturnType<typeof createLocalJWKSet>;
export type KeyLookup = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;

export interface RemoteKeySetOptions {
  log: Logger;
  /** Epoch milliseconds. */
  now?: () => number;
}

export class RemoteKeySet {
  private local: LocalSet | null = null;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private lastRefetch = Number.NEGATIVE_INFINITY;
  private pending: Promise<void> | null = null;
  private readonly now: () => number;

  constructor(
    private readonly url: URL,
    private readonly options: RemoteKeySetOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** The first fetch. Never throws: a provider that is down is a warning, not a reason not to start. */
  async start(): Promise<void> {
    await this.refresh("start-up");
  }

  /** The key for a token's header; rejects with jose's JWKSNoMatchingKey when there is none. */
  readonly lookup: KeyLookup = async (header, token) => {
    if (this.local !== null && this.now() - this.fetchedAt > MAX_AGE_MS && this.mayRefetch()) void this.refresh("stale");
    if (this.local !== null) {
      try {
        return await this.local(header, token);
      } catch (error) {
        if (!(error instanceof JWKSNoMatchingKey)) throw error;
      }
    }
    if (this.pending !== null) await this.pending;
    else if (this.mayRefetch()) await this.refresh("unknown kid");
    else throw new JWKSNoMatchingKey();
    if (this.local === null) throw new JWKSNoMatchingKey();
    return this.local(header, token);
  };

  private mayRefetch(): boolean {
    return this.pending === null && this.now() - this.lastRefetch >= COOLDOWN_MS;
  }

  /** One fetch at a time; failures keep the keys held and are logged (one line each). */
  private refresh(why: "start-up" | "stale" | "unknown kid"): Promise<void> {
    if (this.pending !== null) return this.pending;
    if (why !== "start-up") this.lastRefetch = this.now();
    this.pending = (async () => {
      try {
        const set = await this.fetchSet();
        this.local = createLocalJWKSet(set);
        this.fetchedAt = this.now();
      } catch (error) {
        const held = this.local === null ? "no keys held yet: app tokens are refused until it answers" : "keeping the keys held";
        this.options.log.warn(`AUTH_JWKS_URL could not be read (${why}); ${held}`, { url: this.url.origin + this.url.pathname, ...errorFields(error) });
      } finally {
        this.pending = null;
      }
    })();
    return this.pending;
  }

  private async fetchSet(): Promise<JSONWebKeySet> {
    const res = await fetch(this.url, {
      headers: { accept: "application/json, application/jwk-set+json" },
      redirect: "manual",
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`answered ${res.status}, expected 200`);
    }
    const text = await readBounded(res, MAX_BYTES);
    if (text === null) throw new Error(`answered more than ${MAX_BYTES} bytes`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error("answered something that is not JSON");
    }
    const keys = (json as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(keys)) throw new Error('answered JSON without a "keys" array');
    const usable = keys.filter((k): k is JSONWebKeySet["keys"][number] => typeof k === "object" && k !== null && ["RSA", "EC", "OKP"].includes((k as { kty?: unknown }).kty as string));
    if (usable.length === 0) throw new Error("answered a key set without any RSA, EC or OKP key");
    return { keys: usable.slice(0, MAX_KEYS) };
  }
}

