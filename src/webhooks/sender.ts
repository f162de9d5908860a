/**
 * WebhookSender: takes entries from the outbox and POSTs them to WEBHOOK_URL (SPEC §6).
 *
 * - Each attempt is signed when it is sent (`Switchboard-Signature`, a fresh `t` on every retry).
 * - A 2xx ends an event. Anything else — another status (redirects included), no answer within
 *   `attemptTimeoutMs`, a refused connection — is retried with the same body after
 *   `retryDelayMs` (1 s doubling to 60 s, jittered), until the event is WEBHOOK_MAX_AGE_S old; it is
 *   then dropped, counted as failed and logged.
 * - Events of one ordering key go one at a time, in outbox order: a failing event holds back the
 *   later events of its key only. Different keys are sent concurrently, up to `concurrency`.
 * - At most `maxHeld` taken entries wait in memory; past that, taking pauses until some are done
 *   (keys blocked behind a failing event keep their entries here, not in Redis' cursor).
 */
import { SIGNATURE_HEADER, signatureHeader } from "../auth/signature.ts";
import { errorFields, type Logger } from "../log.ts";
import { DEFAULT_BACKOFF, retryDelayMs, type BackoffOptions } from "./backoff.ts";
import type { Outbox, OutboxEntry } from "./outbox.ts";

export interface SenderCounters {
  webhooksSent: { inc(): void };
  /** Labelled by why: "max_age" here. */
  webhooksFailed: { inc(labels: { reason: string }): void };
  webhooksRetried: { inc(): void };
}

export interface WebhookSenderOptions {
  outbox: Outbox;
  url: string;
  secret: string;
  /** Events older than this are dropped instead of retried (WEBHOOK_MAX_AGE_S). */
  maxAgeS: number;
  log: Logger;
  counters?: SenderCounters;
  /** Default 10 000. */
  attemptTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** Attempts in flight at once, over all keys. Default 32. */
  concurrency?: number;
  /** Taken entries held in memory at most. Default 10 000. */
  maxHeld?: number;
}

interface KeyQueue {
  key: string;
  entries: OutboxEntry[];
  failures: number;
  /** A turn is running (an attempt, or giving up): no other may start. */
  busy: boolean;
  retry: ReturnType<typeof setTimeout> | null;
}

type Outcome = { ok: true } | { ok: false; reason: string };

export class WebhookSender {
  private readonly o: Required<Omit<WebhookSenderOptions, "counters">> & { counters: SenderCounters | undefined };
  private readonly queues = new Map<string, KeyQueue>();
  /** Keys whose first entry may be attempted now. */
  private readonly ready = new Set<string>();
  private held = 0;
  private inFlight = 0;
  private readonly aborts = new Set<AbortController>();
  private readonly unacked: OutboxEntry[] = [];
  private running: Promise<void> | null = null;
  private closed = false;
  private wakeLoop: (() => void) | null = null;
  private readFailing = false;

  constructor(options: WebhookSenderOptions) {
    this.o = {
      attemptTimeoutMs: 10_000,
      backoff: DEFAULT_BACKOFF,
      concurrency: 32,
      maxHeld: 10_000,
      ...options,
      counters: options.counters,
    };
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Stops taking, aborts attempts in flight (their events stay in the outbox) and waits for them. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const q of this.queues.values()) if (q.retry !== null) clearTimeout(q.retry);
    for (const abort of this.aborts) abort.abort();
    this.wakeLoop?.();
    await this.running;
    while (this.inFlight > 0) await Bun.sleep(5);
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      try {
        await this.flushAcks();
        if (this.held >= this.o.maxHeld) {
          await new Promise<void>((resolve) => (this.wakeLoop = resolve));
          this.wakeLoop = null;
          continue;
        }
        const asked = performance.now();
        const entries = await this.o.outbox.take(Math.min(500, this.o.maxHeld - this.held), 200);
        if (this.closed) break;
        // An outbox that answers at once with nothing (closed under us) must not spin this loop.
        if (entries.length === 0 && performance.now() - asked < 20) await Bun.sleep(100);
        for (const entry of entries) this.enqueue(entry);
        this.pump();
        this.readFailing = false;
      } catch (error) {
        // Once per outage, not every half second while Redis does not answer.
        if (!this.readFailing) this.o.log.warn("webhooks: reading the outbox failed; retrying", errorFields(error));
        this.readFailing = true;
        await Bun.sleep(500);
      }
    }
  }

  private enqueue(entry: OutboxEntry): void {
    let q = this.queues.get(entry.key);
    if (q === undefined) {
      q = { key: entry.key, entries: [], failures: 0, busy: false, retry: null };
      this.queues.set(entry.key, q);
    }
    insertInOrder(q, entry);
    this.held++;
    if (!q.busy && q.retry === null) this.ready.add(entry.key);
  }

  /** Starts attempts for ready keys while there is room. */
  private pump(): void {
    for (const key of this.ready) {
      if (this.closed || this.inFlight >= this.o.concurrency) return;
      this.ready.delete(key);
      const q = this.queues.get(key);
      if (q !== undefined && !q.busy) void this.attempt(q);
    }
  }

  /** One turn of a key: its first entry is attempted, given up, or found gone. */
  private async attempt(q: KeyQueue): Promise<void> {
    q.busy = true;
    try {
      await this.step(q);
    } finally {
      q.busy = false;
    }
    if (!this.closed && q.retry === null) this.after(q);
  }

  private async step(q: KeyQueue): Promise<void> {
    this.dropLost(q);
    const entry = q.entries[0];
    if (entry === undefined) return;
    if (Date.now() - entry.event.at > this.o.maxAgeS * 1000) return this.giveUp(q, entry, "older than WEBHOOK_MAX_AGE_S");
    this.inFlight++;
    const outcome = await this.post(entry);
    this.inFlight--;
    if (outcome.ok) {
      // Even while closing: a delivered event must not be sent again by the next holder.
      this.o.counters?.webhooksSent.inc();
      q.failures = 0;
      return this.finish(q, entry);
    }
    if (this.closed) return;
    q.failures++;
    const delay = retryDelayMs(q.failures, this.o.backoff);
    if (Date.now() + delay - entry.event.at > this.o.maxAgeS * 1000) return this.giveUp(q, entry, outcome.reason);
    this.o.counters?.webhooksRetried.inc();
    this.o.log.debug("webhook attempt failed; retrying", { event: entry.event.id, type: entry.event.type, reason: outcome.reason, failures: q.failures, retryInMs: delay });
    q.retry = setTimeout(() => {
      q.retry = null;
      this.ready.add(q.key);
      this.pump();
    }, delay);
  }

  /** One signed POST; never throws. */
  private async post(entry: OutboxEntry): Promise<Outcome> {
    const abort = new AbortController();
    this.aborts.add(abort);
    const timer = setTimeout(() => abort.abort(new Error("timeout")), this.o.attemptTimeoutMs);
    try {
      const res = await fetch(this.o.url, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "User-Agent": "Switchboard-Webhooks/1",
          [SIGNATURE_HEADER]: signatureHeader(this.o.secret, entry.body),
        },
        body: entry.body,
        redirect: "manual",
        signal: abort.signal,
      });
      await res.body?.cancel().catch(() => {});
      return res.status >= 200 && res.status < 300 ? { ok: true } : { ok: false, reason: `status ${res.status}` };
    } catch (error) {
      const reason = abort.signal.aborted ? `no answer within ${this.o.attemptTimeoutMs} ms` : error instanceof Error ? error.message : String(error);
      return { ok: false, reason };
    } finally {
      clearTimeout(timer);
      this.aborts.delete(abort);
    }
  }

  private async giveUp(q: KeyQueue, entry: OutboxEntry, reason: string): Promise<void> {
    this.o.counters?.webhooksFailed.inc({ reason: "max_age" });
    this.o.log.warn("webhook dropped after WEBHOOK_MAX_AGE_S", { event: entry.event.id, type: entry.event.type, key: entry.key, at: entry.event.at, maxAgeS: this.o.maxAgeS, reason });
    q.failures = 0;
    await this.finish(q, entry);
  }

  /** Removes the first entry of `q` from memory and from the outbox. */
  private async finish(q: KeyQueue, entry: OutboxEntry): Promise<void> {
    q.entries.shift();
    this.held--;
    this.wakeLoop?.();
    try {
      await this.o.outbox.done(entry);
    } catch {
      // Retried by the loop; if this process loses the lane first, the next holder sends it
      // again (at least once).
      this.unacked.push(entry);
    }
  }

  private async flushAcks(): Promise<void> {
    while (this.unacked.length > 0) {
      const entry = this.unacked[0]!;
      if (this.o.outbox.holds(entry)) await this.o.outbox.done(entry);
      this.unacked.shift();
    }
  }

  /** Entries of a lane this process no longer holds go: the lane's new holder sends them. */
  private dropLost(q: KeyQueue): void {
    const kept = q.entries.filter((e) => this.o.outbox.holds(e));
    if (kept[0] !== q.entries[0]) q.failures = 0; // the backoff belonged to the entry that went
    this.held -= q.entries.length - kept.length;
    if (kept.length !== q.entries.length) this.wakeLoop?.();
    q.entries = kept;
  }

  /** After a turn: the key's next entry is ready, or the key is forgotten. */
  private after(q: KeyQueue): void {
    if (q.entries.length > 0) this.ready.add(q.key);
    else this.queues.delete(q.key);
    this.pump();
  }
}

/** A message.published event's position in its topic, or null for any other event. */
function positionOf(entry: OutboxEntry): { seq: number; epoch: string } | null {
  const data = entry.event.data as { seq?: unknown; epoch?: unknown } | null;
  if (entry.event.type !== "message.published" || typeof data?.seq !== "number" || typeof data.epoch !== "string") return null;
  return { seq: data.seq, epoch: data.epoch };
}

/**
 * Appends an entry to its key's queue. Publications of one topic stored out of order (published on
 * two machines at the same moment: each stores its own after the ordering point answered) are put
 * back in `seq` order while they wait; the first entry is never overtaken once it was attempted.
 */
function insertInOrder(q: KeyQueue, entry: OutboxEntry): void {
  const at = positionOf(entry);
  let i = q.entries.length;
  if (at !== null) {
    const floor = q.busy || q.retry !== null || q.failures > 0 ? 1 : 0;
    for (; i > floor; i--) {
      const prev = positionOf(q.entries[i - 1]!);
      if (prev === null || prev.epoch !== at.epoch || prev.seq < at.seq) break;
    }
  }
  q.entries.splice(i, 0, entry);
}
