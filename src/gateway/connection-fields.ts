/**
 * The parts of a Connection that only some sockets ever set, kept out of its own fields (idle
 * memory, bench/README.md): JSC gives an object of up to 18 fields a 160-byte cell, 19–26 a
 * 224-byte one, and most sockets never set these.
 */
import type { CredentialTimers } from "./expiry.ts";
import type { Pacer } from "./pacer.ts";
import type { BucketRate, RejectionRun } from "./rate.ts";
import type { ConnectionConfig } from "./connection-host.ts";

type Timer = ReturnType<typeof setTimeout>;

/**
 * A token socket's auth timer, a closing socket's kill timer, a replay's pacer, a credential's
 * timers, publishes in flight, a retirement time (MAX_CONNECTION_AGE_S), a shed socket's retry
 * hint, a run of frames refused by the flood rule, the topics the server API subscribed it to:
 * made by the first that is set.
 */
export class RareFields {
  authTimer: Timer | null = null;
  killTimer: Timer | null = null;
  pacer: Pacer | null = null;
  expiry: CredentialTimers | null = null;
  publishesInFlight = 0;
  retireAt: number | null = null;
  shedRetryMs: number | null = null;
  floodRejections: RejectionRun | null = null;
  serverTopics: Set<string> | null = null;

  /** The socket is gone: stops the pacer and every timer. */
  release(): void {
    this.pacer?.close();
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    if (this.killTimer !== null) clearTimeout(this.killTimer);
    this.authTimer = this.killTimer = null;
    this.expiry?.clear();
  }
}

/** What Connection extends: its rare fields as if they were its own (one field while none is set). */
export abstract class WithRareFields {
  private rare: RareFields | null = null;

  protected rareFields(): RareFields {
    return (this.rare ??= new RareFields());
  }

  /** The rare fields when any was set, else null (nothing to release or read). */
  protected get rareIfSet(): RareFields | null {
    return this.rare;
  }

  /** When the sweep retires this socket with 1012 (MAX_CONNECTION_AGE_S), or null. */
  get retireAt(): number | null {
    return this.rare?.retireAt ?? null;
  }

  /** A token socket's AUTH_TIMEOUT_MS timer (socket-session.ts). */
  get authTimer(): Timer | null {
    return this.rare?.authTimer ?? null;
  }

  set authTimer(timer: Timer | null) {
    if (timer !== null || this.rare !== null) this.rareFields().authTimer = timer;
  }

  /** `expiring`, then 4001 at the credential's expiry (SPEC §4); never for built-in cookie sessions. */
  get expiry(): CredentialTimers | null {
    return this.rare?.expiry ?? null;
  }

  set expiry(timers: CredentialTimers | null) {
    if (timers !== null || this.rare !== null) this.rareFields().expiry = timers;
  }

  /**
   * Topics `/api/subscribe` put the socket in (SPEC §6): the server decided those, so a refresh's
   * new caps do not take them away (socket-topics.ts). Null while there is none.
   */
  get serverTopics(): Set<string> | null {
    return this.rare?.serverTopics ?? null;
  }

  /** Marks a topic as the server API's (serverSubscribe). */
  serverMade(topic: string): void {
    (this.rareFields().serverTopics ??= new Set()).add(topic);
  }

  /** Publishes handed to the broker and not yet acknowledged (publish-frames.ts). */
  get publishesInFlight(): number {
    return this.rare?.publishesInFlight ?? 0;
  }

  set publishesInFlight(n: number) {
    if (n !== 0 || this.rare !== null) this.rareFields().publishesInFlight = n;
  }
}

const floodRates = new WeakMap<ConnectionConfig, BucketRate>();

/** The flood rule's rate: one object per config, shared by every socket's bucket. */
export function floodRate(config: ConnectionConfig): BucketRate {
  let rate = floodRates.get(config);
  if (rate === undefined) floodRates.set(config, (rate = { perSecond: config.rateLimitPerS, burst: config.rateLimitBurst }));
  return rate;
}
