/**
 * Delivery order on one topic (SPEC "Delivery"): each publication the broker hands the hub is
 * delivered once, in order — same epoch and `seq == last + 1` → delivered; `seq <= last` → dropped
 * (a duplicate); a gap or another epoch → repaired from history, or, when history cannot (trimmed,
 * expired, a new epoch), reported to the subscribers with `resync` and delivery goes on from there.
 * Publications that arrive before the topic's position is known, or during a repair, are buffered
 * and merged after it. The hub (hub.ts) owns the topics; this is what it does with their publications.
 */
import type { Broker, Publication } from "../broker/broker.ts";
import { resyncFrame, type TopicState } from "./hub-topic.ts";

/** A buffer past this many publications is dropped; the repair then reads history instead. */
const MAX_BUFFER = 10_000;

export interface TopicOrderOptions {
  broker: Broker;
  fanout(topic: string, frame: string): void;
  /** Called for every gap repair and resync, for metrics and logs. */
  onRepair?(topic: string, outcome: "repaired" | "resync" | "failed"): void;
  onHistoryRead?(topic: string, reason: "start" | "since" | "repair"): void;
  /** Delay before retrying a repair that failed (broker unreachable). */
  retryMs: number;
  /** False once the hub dropped this state (the topic was left meanwhile). */
  current(state: TopicState): boolean;
}

export class TopicOrder {
  constructor(private readonly options: TopicOrderOptions) {}

  /** A publication for a followed topic: buffered until its position is known and while it is repaired, else delivered in order. */
  accept(state: TopicState, publication: Publication): void {
    if (state.position === null || state.repairing) {
      this.bufferUp(state, publication);
      return;
    }
    this.advance(state, publication);
  }

  private bufferUp(state: TopicState, publication: Publication): void {
    if (state.buffer.length >= MAX_BUFFER) state.buffer.shift();
    state.buffer.push(publication);
  }

  /** Delivers what was buffered (the position became known, or a repair ended), in order. */
  drainBuffer(state: TopicState): void {
    const buffered = state.buffer.sort((a, b) => (a.epoch === b.epoch ? a.seq - b.seq : 0));
    state.buffer = [];
    for (let i = 0; i < buffered.length; i++) {
      if (state.repairing) {
        state.buffer.push(...buffered.slice(i));
        return;
      }
      this.advance(state, buffered[i]!);
    }
  }

  private advance(state: TopicState, publication: Publication): void {
    const position = state.position!;
    if (publication.epoch === position.epoch) {
      if (publication.seq <= position.seq) return;
      if (publication.seq === position.seq + 1) {
        this.emit(state, publication);
        return;
      }
    }
    this.bufferUp(state, publication);
    this.repair(state);
  }

  private emit(state: TopicState, publication: Publication): void {
    state.position = { seq: publication.seq, epoch: publication.epoch };
    state.recovery?.delivered(publication);
    if (state.pending.size > 0) {
      for (const pending of state.pending) {
        pending.collected.push(publication);
        pending.wake?.();
      }
    }
    this.options.fanout(state.topic, publication.frame);
  }

  /**
   * Fills a gap from history (or checks for one after a broker link came back). When history cannot (trimmed, expired, a new epoch), subscribers
   * get `resync` and delivery goes on from the newest position; a new epoch's own history is
   * replayed after its resync when it is still complete.
   */
  repair(state: TopicState): void {
    state.repairing = true;
    const { broker } = this.options;
    const from = state.position!;
    const run = async () => {
      this.options.onHistoryRead?.(state.topic, "repair");
      let history = await broker.history(state.topic, from);
      if (!this.options.current(state)) return;
      if (history.recovered) {
        for (const publication of history.publications) if (publication.seq > state.position!.seq) this.emit(state, publication);
        this.options.onRepair?.(state.topic, "repaired");
      } else {
        let resyncAt = history.position;
        if (history.position.epoch !== from.epoch) {
          const fresh = { seq: 0, epoch: history.position.epoch };
          this.options.onHistoryRead?.(state.topic, "repair");
          const replay = await broker.history(state.topic, fresh);
          if (!this.options.current(state)) return;
          if (replay.recovered && replay.position.epoch === fresh.epoch) {
            history = replay;
            resyncAt = fresh;
          }
        }
        state.position = resyncAt;
        state.recovery?.reset();
        this.options.fanout(state.topic, resyncFrame(state.topic, resyncAt));
        for (const pending of state.pending) pending.wake?.();
        for (const publication of history.publications) if (publication.seq > state.position.seq) this.emit(state, publication);
        this.options.onRepair?.(state.topic, "resync");
      }
      state.repairing = false;
      this.drainBuffer(state);
    };
    run().catch(() => {
      this.options.onRepair?.(state.topic, "failed");
      if (!this.options.current(state)) return;
      state.retry = setTimeout(() => {
        state.retry = null;
        if (this.options.current(state)) this.repair(state);
      }, this.options.retryMs);
    });
  }
}
