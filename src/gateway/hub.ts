/**
 * The hub joins local sockets to the broker. Per topic it keeps one broker subscription
 * (reference counted by local members), the last position it delivered, and the rules that
 * make delivery exact: in order, no duplicate, and every gap either repaired from history or
 * reported with `resync` (SPEC "Delivery": topic-order.ts). Local fan-out is one
 * `fanout(topic, frame)` call per publication with the broker's frame as is.
 *
 * The hub knows nothing of Bun: a Member is anything that can be sent a frame and be
 * (un)subscribed locally, and `fanout` is injected. See docs/architecture.md.
 */
import type { Broker, Position, Publication } from "../broker/broker.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import { MemberCounts } from "./member-counts.ts";
import { TopicOrder } from "./topic-order.ts";
import { addMember, catchUp, followedByOthers, newTopicState, recoverSince, replayPaced, type Member, type PendingRecovery, type RecoverDeps, type TopicState } from "./hub-topic.ts";

export type { Member } from "./hub-topic.ts";
export { resyncFrame } from "./hub-topic.ts";

export interface HubOptions {
  broker: Broker;
  fanout(topic: string, frame: string): void;
  /** Called for every gap repair and resync, for metrics and logs. */
  onRepair?(topic: string, outcome: "repaired" | "resync" | "failed"): void;
  /** Delay before retrying a repair that failed (broker unreachable). */
  retryMs?: number;
  /**
   * How long a topic stays followed after its last member left (default 0: at once). A member
   * that comes back meanwhile (a reconnecting user's inbox) joins at once, without a broker
   * subscribe and first history read.
   */
  lingerMs?(topic: string): number;
  /** Most frames a topic keeps in memory for `since` subscribes (default 100: the history size). */
  replayCacheSize?(topic: string): number;
  /** Every history read the hub makes, for metrics: a topic's start, a `since`, a repair. */
  onHistoryRead?(topic: string, reason: "start" | "since" | "repair"): void;
  /**
   * Topics delivered without an ordering point (a namespace's `delivery: "ephemeral"`, SPEC §5):
   * their frames arrive through `onEphemeral` only; no position, no history read, no gap repair,
   * no resync, and a `since` is never recovered.
   */
  isEphemeral?(topic: string): boolean;
}

export interface Ack {
  seq: number;
  epoch: string;
  recovered: boolean;
  /** Publications replayed for `since` (what the replay costs, SPEC §8). */
  replayed: number;
}

/** The position of an ephemeral topic: it has none (acks carry no seq/epoch). */
const EPHEMERAL: Position = { seq: 0, epoch: "" };

/** The `ready` of every started topic: a followed topic keeps no promise of its own. */
const STARTED: Promise<void> = Promise.resolve();

export class Hub {
  private readonly topics = new Map<string, TopicState>();
  /** Local members per topic, kept as they change (the registry's report: member-counts.ts). */
  private readonly counts = new MemberCounts();
  private readonly recoverDeps: RecoverDeps;
  /** In order, no duplicate, gaps repaired or resynced (topic-order.ts). */
  private readonly order: TopicOrder;

  constructor(private readonly options: HubOptions) {
    const current = (state: TopicState) => this.topics.get(state.topic) === state;
    const replayCacheSize = (topic: string) => options.replayCacheSize?.(topic) ?? 100;
    this.recoverDeps = { broker: options.broker, onHistoryRead: options.onHistoryRead, current, replayCacheSize };
    this.order = new TopicOrder({
      broker: options.broker,
      fanout: (topic, frame) => options.fanout(topic, frame),
      onRepair: (topic, outcome) => options.onRepair?.(topic, outcome),
      onHistoryRead: (topic, reason) => options.onHistoryRead?.(topic, reason),
      retryMs: options.retryMs ?? 500,
      current,
    });
  }

  /** Broker event: a publication for a topic this process subscribed to. */
  onPublication(publication: Publication): void {
    const state = this.topics.get(publication.topic);
    if (state === undefined || state.ephemeral) return;
    this.order.accept(state, publication);
  }

  /** Broker event: an ephemeral frame (presence) for a topic. */
  onEphemeral(topic: string, frame: string): void {
    if (this.topics.has(topic)) this.options.fanout(topic, frame);
  }

  /** Broker event: a link came back; anything may have been missed on its topics (all when absent). */
  onReconnect(topics?: Iterable<string>): void {
    const states = topics === undefined ? this.topics.values() : [...topics].map((t) => this.topics.get(t));
    for (const state of states) {
      if (state !== undefined && state.position !== null && !state.repairing && !state.ephemeral) this.order.repair(state);
    }
  }

  topicsCount(): number {
    return this.topics.size;
  }

  /** Local members per topic (the registry's report): one map kept up to date, changed in place. */
  memberCounts(): ReadonlyMap<string, number> {
    return this.counts.live;
  }

  /** The topics whose member counts changed since the last call (null: unknown): member-counts.ts. */
  takeCountChanges(): ReadonlySet<string> | null {
    return this.counts.takeChanges();
  }

  members(topic: string): Iterable<Member> {
    return this.topics.get(topic)?.members ?? [];
  }

  /** True when a socket of another user than `userId` follows the topic here (hub-topic.ts). */
  followedByOthers(topic: string, userId: string): boolean {
    const state = this.topics.get(topic);
    return state !== undefined && followedByOthers(state, userId);
  }

  isMember(member: Member, topic: string): boolean {
    return this.topics.get(topic)?.members.has(member) ?? false;
  }

  /** The name string of a topic this process follows (its members share it), or null. */
  topicName(topic: string): string | null {
    return this.topics.get(topic)?.topic ?? null;
  }

  /** The last position delivered on a topic this process follows, or null. */
  position(topic: string): Position | null {
    return this.topics.get(topic)?.position ?? null;
  }

  /**
   * Joins a member to a topic. `onAck` runs synchronously right before the replayed frames are
   * sent and the member is subscribed locally, so the ack precedes them and nothing can be
   * delivered in between. With `since`, every publication after it is replayed when history
   * still holds them (`recovered: true`); otherwise the member just goes live.
   * Rejects with `unavailable` when the broker cannot be reached.
   */
  async subscribe(member: Member, topic: string, since: Position | undefined, onAck: (ack: Ack) => void): Promise<void> {
    const state = this.ensure(topic);
    const rejoin = state.members.has(member);
    addMember(state, member);
    this.counts.set(topic, state.members.size);
    if (rejoin) member.unsubscribeLocal(topic);
    try {
      await state.ready;
    } catch (error) {
      this.leave(member, topic);
      throw error;
    }
    if (!state.members.has(member) || state.position === null) return; // left while subscribing
    if (since === undefined || state.ephemeral) {
      await this.goLive(state, member, onAck, { recovered: false, frames: [] });
      return;
    }
    try {
      const replay = await recoverSince(state, member, since, this.recoverDeps);
      if (replay !== null) await this.goLive(state, member, onAck, replay, since);
    } catch (error) {
      this.leave(member, topic);
      throw error;
    }
  }

  /**
   * Joins a member without `since` synchronously when the topic is already followed with a known
   * position: what `subscribe` does after its await, without the ack. False (nothing done) when
   * the topic is new here, still starting, or the member is already in it.
   */
  joinNow(member: Member, topic: string): boolean {
    const state = this.topics.get(topic);
    if (state === undefined || state.position === null || state.members.has(member)) return false;
    this.stayOn(state);
    addMember(state, member);
    this.counts.set(topic, state.members.size);
    member.subscribeLocal(topic);
    return true;
  }

  /** Removes a member; the broker subscription ends with the last one (after its linger). Idempotent. */
  leave(member: Member, topic: string): void {
    const state = this.topics.get(topic);
    if (state === undefined || !state.members.delete(member)) return;
    this.counts.set(topic, state.members.size);
    member.unsubscribeLocal(topic);
    if (state.members.size > 0) return;
    const lingerMs = this.options.lingerMs?.(topic) ?? 0;
    if (lingerMs > 0 && state.position !== null) {
      state.linger = setTimeout(() => {
        state.linger = null;
        if (state.members.size === 0 && this.topics.get(topic) === state) this.drop(state);
      }, lingerMs);
      state.linger.unref?.();
      return;
    }
    this.drop(state);
  }

  private drop(state: TopicState): void {
    this.topics.delete(state.topic);
    this.counts.set(state.topic, 0);
    if (state.retry !== null) clearTimeout(state.retry);
    this.options.broker.unsubscribe(state.topic).catch(() => {
      // The broker drops interest with the link anyway; nothing to undo here.
    });
  }

  close(): void {
    for (const state of this.topics.values()) {
      if (state.retry !== null) clearTimeout(state.retry);
      if (state.linger !== null) clearTimeout(state.linger);
      this.counts.set(state.topic, 0);
    }
    this.topics.clear();
  }

  /**
   * Acks, replays and subscribes the member locally. A short replay (or a member that cannot pace)
   * goes out in this synchronous step; a longer one is paced by the member's drain (SPEC §8), with
   * what the hub delivers meanwhile collected and sent after it: no gap, no duplicate. A recovered
   * `since` ahead of this process's position waits for the hub to catch up to it (`catchUp`).
   */
  private async goLive(state: TopicState, member: Member, onAck: (ack: Ack) => void, replay: { recovered: boolean; frames: string[] }, since?: Position): Promise<void> {
    const position = state.position!;
    onAck({ seq: position.seq, epoch: position.epoch, recovered: replay.recovered, replayed: replay.frames.length });
    const ahead = replay.recovered && since !== undefined && since.epoch === position.epoch && since.seq > position.seq;
    if (!ahead && (replay.frames.length === 0 || member.sendPaced === undefined)) {
      for (const frame of replay.frames) member.send(frame);
      member.subscribeLocal(state.topic);
      return;
    }
    const pending: PendingRecovery = { collected: [] };
    state.pending.add(pending);
    try {
      const live = ahead ? await catchUp(state, member, pending, since) : await replayPaced(state, member, pending, position, replay.frames);
      if (!live) this.leave(member, state.topic);
    } finally {
      state.pending.delete(pending);
    }
  }

  private stayOn(state: TopicState): void {
    if (state.linger === null) return;
    clearTimeout(state.linger);
    state.linger = null;
  }

  private ensure(topic: string): TopicState {
    const existing = this.topics.get(topic);
    if (existing !== undefined) {
      this.stayOn(existing);
      return existing;
    }
    const state = newTopicState(topic, this.options.isEphemeral?.(topic) ?? false, STARTED);
    state.ready = this.start(state);
    state.ready.catch(() => {
      // Awaited by every subscriber; this guard only keeps an unobserved failure quiet.
    });
    this.topics.set(topic, state);
    return state;
  }

  /** Subscribes at the broker first, then reads the position: nothing after it can be missed. */
  private async start(state: TopicState): Promise<void> {
    const { broker } = this.options;
    try {
      await broker.subscribe(state.topic);
      let position = EPHEMERAL;
      if (!state.ephemeral) {
        this.options.onHistoryRead?.(state.topic, "start");
        ({ position } = await broker.history(state.topic));
      }
      if (this.topics.get(state.topic) !== state) return;
      state.position = position;
      state.ready = STARTED;
    } catch (error) {
      if (this.topics.get(state.topic) === state) {
        this.topics.delete(state.topic);
        this.counts.set(state.topic, 0);
        broker.unsubscribe(state.topic).catch(() => {}); // the subscribe may have succeeded before the read failed
      }
      throw error instanceof SwitchboardError ? error : new SwitchboardError(ErrorCode.unavailable, "the broker is unreachable; retry");
    }
    this.order.drainBuffer(state);
  }
}
