/**
 * What one topic's hub state knows for `since` subscribes, so that a reconnect storm reads the
 * topic's history a bounded number of times instead of once per socket:
 *
 * - a replay cache: after a history read, the frames from its `since` up to what the hub has
 *   delivered, extended by every publication the hub delivers next (exactly the topic's
 *   sequence, since the hub delivers in order without gaps). A later `since` inside it is
 *   replayed from memory. Bounded by `max` frames (the history size) and dropped when unused for
 *   `idleMs` or when the hub resyncs the topic;
 * - a floor: a read that found `since` trimmed means every older `since` of that epoch is
 *   trimmed too (history only loses its oldest entries): `recovered:false` without a read;
 * - one read at a time: sockets that arrive while a read runs wait for it, and the next read
 *   starts from the oldest `since` among them.
 */
import type { Position, Publication } from "../broker/broker.ts";
import type { Replay } from "./recovery.ts";

const IDLE_MS = 10_000;

interface Cache {
  epoch: string;
  /** The frames are seq from+1 .. from+frames.length. */
  from: number;
  frames: string[];
  usedAt: number;
}

export class TopicRecovery {
  private cache: Cache | null = null;
  private floor: Position | null = null;
  private reading: Promise<void> | null = null;
  private wantMin = Number.POSITIVE_INFINITY;

  constructor(
    private readonly max: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The replay for `since` from what is known here, or null when a read is needed. */
  local(since: Position, delivered: Position): Replay | null {
    if (since.epoch !== delivered.epoch) return null;
    if (since.seq >= delivered.seq) return { recovered: true, frames: [] };
    if (this.floor !== null && this.floor.epoch === since.epoch && since.seq <= this.floor.seq) return { recovered: false, frames: [] };
    const c = this.cache;
    if (c === null || c.epoch !== since.epoch || since.seq < c.from || c.from + c.frames.length !== delivered.seq) return null;
    c.usedAt = this.now();
    return { recovered: true, frames: c.frames.slice(since.seq - c.from) };
  }

  /** What a read for `since` found, merged up to `delivered` (recovery.ts). */
  learn(since: Position, delivered: Position, replay: Replay): void {
    if (since.epoch !== delivered.epoch) return;
    if (!replay.recovered) {
      if (this.floor === null || this.floor.epoch !== since.epoch || this.floor.seq < since.seq) this.floor = since;
      return;
    }
    if (this.max <= 0) return;
    const c = this.cache;
    if (c !== null && c.epoch === since.epoch && c.from <= since.seq && c.from + c.frames.length === delivered.seq) return;
    const cut = Math.max(0, replay.frames.length - this.max);
    this.cache = { epoch: since.epoch, from: since.seq + cut, frames: replay.frames.slice(cut), usedAt: this.now() };
  }

  /** Every publication the hub delivers, in order. */
  delivered(publication: Publication): void {
    const c = this.cache;
    if (c === null) return;
    if (publication.epoch !== c.epoch || publication.seq !== c.from + c.frames.length + 1 || this.now() - c.usedAt > IDLE_MS) {
      this.cache = null;
      return;
    }
    c.frames.push(publication.frame);
    if (c.frames.length > this.max) {
      c.frames.shift();
      c.from++;
    }
  }

  /** The hub lost continuity (resync, new epoch): nothing known here holds any more. */
  reset(): void {
    this.cache = null;
    this.floor = null;
  }

  /**
   * Waits for a read that may answer `sinceSeq`: joins the one running (and asks the next one to
   * start at least as far back), or starts one from the oldest `since` waiting. Rejects only for
   * the caller whose own read failed.
   */
  async whenRead(sinceSeq: number, read: (fromSeq: number) => Promise<void>): Promise<void> {
    if (this.reading !== null) {
      this.wantMin = Math.min(this.wantMin, sinceSeq);
      await this.reading.catch(() => {});
      return;
    }
    const from = Math.min(sinceSeq, this.wantMin);
    this.wantMin = Number.POSITIVE_INFINITY;
    const reading = read(from);
    this.reading = reading;
    try {
      await reading;
    } finally {
      this.reading = null;
    }
  }
}
