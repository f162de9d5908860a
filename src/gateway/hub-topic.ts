/**
 * One topic's state in the hub (hub.ts), and the `since` side of a subscribe: the replay from
 * what the topic already knows (topic-recovery.ts), or after a history read shared with the other
 * sockets waiting, merged with what the hub delivered meanwhile (recovery.ts).
 */
import type { Broker, Position, Publication } from "../broker/broker.ts";
import { mergeRecovery, type Replay } from "./recovery.ts";
import { TopicRecovery } from "./topic-recovery.ts";
import { SmallSet } from "./small-set.ts";

export interface Member {
  /** Sends one frame to this socket only. */
  send(frame: string): void;
  /** Starts delivery of the topic's fan-out to this socket (Bun `ws.subscribe`). */
  subscribeLocal(topic: string): void;
  unsubscribeLocal(topic: string): void;
  /**
   * Sends frames as fast as the peer reads them (a replay, SPEC §8: paced by the socket's drain
   * instead of overflowing its buffer); false when the member went away or stopped reading.
   * Without it, frames are sent at once.
   */
  sendPaced?(frames: string[]): Promise<boolean>;
  /** The socket's user (the publisher's creation budget asks whether another user follows a topic). */
  userId: string | null;
}

export function resyncFrame(topic: string, position: Position): string {
  return JSON.stringify({ type: "resync", topic, seq: position.seq, epoch: position.epoch });
}

/** A socket reading history for `since`: it collects what the hub delivers meanwhile. */
export interface PendingRecovery {
  collected: Publication[];
  /** Called after each delivery and resync while set (`catchUp` waits with it). */
  wake?: () => void;
}

export interface TopicState {
  topic: string;
  /** Delivered without an ordering point (SPEC §5 `delivery: "ephemeral"`): no position, history or repair. */
  ephemeral: boolean;
  /** A small set: most topics have a member or two (a user's inbox), and a Set of one costs ~250 B. */
  members: SmallSet<Member>;
  /** Members added so far (joins and rejoins): what `followedByOthers` keeps its answer by. */
  joins: number;
  /** The user no other user's member was found besides, after `at` joins (`followedByOthers`). */
  onlyUser: { user: string; at: number } | null;
  /** Last delivered position; null until the broker subscription and first read are done. */
  position: Position | null;
  ready: Promise<void>;
  repairing: boolean;
  /** Publications that arrived before the position was known or during a repair. */
  buffer: Publication[];
  /** Sockets reading history for `since`: a small set, since a topic usually has none (a user's inbox). */
  pending: SmallSet<PendingRecovery>;
  retry: ReturnType<typeof setTimeout> | null;
  /** The replay cache, trimmed floor and read coalescing for `since` subscribes; made by the first. */
  recovery: TopicRecovery | null;
  /** Set while the topic lingers without members (see HubOptions.lingerMs). */
  linger: ReturnType<typeof setTimeout> | null;
}

/**
 * True when a member of another user than `userId` follows the topic (the publisher's creation
 * budget, publisher.ts). The scan stops at the first other user, so it is short unless every
 * member is `userId`'s; that answer is kept until a member joins (one leaving cannot change it),
 * so a room of one user's sockets is not scanned again on every publish.
 */
export function followedByOthers(state: TopicState, userId: string): boolean {
  if (state.onlyUser?.user === userId && state.onlyUser.at === state.joins) return false;
  for (const member of state.members) if (member.userId !== userId) return true;
  state.onlyUser = { user: userId, at: state.joins };
  return false;
}

/** Adds a member (or adds it again: a rejoin counts as a join too). */
export function addMember(state: TopicState, member: Member): void {
  state.members.add(member);
  state.joins += 1;
}

/** A topic's state before its broker subscription and first history read (hub.ts `ensure`). */
export function newTopicState(topic: string, ephemeral: boolean, ready: Promise<void>): TopicState {
  return {
    topic,
    ephemeral,
    members: new SmallSet(),
    joins: 0,
    onlyUser: null,
    position: null,
    ready,
    repairing: false,
    buffer: [],
    pending: new SmallSet(),
    retry: null,
    linger: null,
    recovery: null,
  };
}

export interface RecoverDeps {
  broker: Broker;
  onHistoryRead?(topic: string, reason: "start" | "since" | "repair"): void;
  /** False once the hub dropped this state (the topic was left meanwhile). */
  current(state: TopicState): boolean;
  /** Frames a topic's replay cache keeps at most. */
  replayCacheSize(topic: string): number;
}

/**
 * The replay for `since`: from what the topic already knows, else after a read shared with the
 * other sockets waiting (topic-recovery.ts); a `since` of another epoch reads alone. Null when
 * the member left meanwhile.
 */
export async function recoverSince(state: TopicState, member: Member, since: Position, deps: RecoverDeps): Promise<Replay | null> {
  const recovery = (state.recovery ??= new TopicRecovery(deps.replayCacheSize(state.topic)));
  for (let round = 0; round < 4; round++) {
    if (!state.members.has(member) || !deps.current(state)) return null;
    const position = state.position!;
    if (since.epoch !== position.epoch) break;
    // Ahead of what this process delivered: publications still on their way here, or a position the
    // topic never reached (recovered:false, else the client would drop what comes as duplicates).
    // Only the broker can tell; its answer is neither cached nor a floor.
    if (since.seq > position.seq) break;
    const known = recovery.local(since, position);
    if (known !== null) return known;
    await recovery.whenRead(since.seq, (seq) => readSince(state, { seq, epoch: since.epoch }, deps).then((r) => recovery.learn(r.since, r.delivered, r.replay)));
  }
  const read = await readSince(state, since, deps);
  return state.members.has(member) ? read.replay : null;
}

/** Reads history after `since`, merged with what the hub delivered meanwhile. */
async function readSince(state: TopicState, since: Position, deps: RecoverDeps): Promise<{ since: Position; delivered: Position; replay: Replay }> {
  const pending: PendingRecovery = { collected: [] };
  state.pending.add(pending);
  let history;
  try {
    deps.onHistoryRead?.(state.topic, "since");
    history = await deps.broker.history(state.topic, since);
  } finally {
    state.pending.delete(pending);
  }
  const delivered = state.position!;
  return { since, delivered, replay: mergeRecovery(since, delivered, history, pending.collected) };
}

/**
 * Sends a replay paced by the member's drain, then what the hub delivered meanwhile (collected by
 * `pending`), until nothing is left; then, in the same synchronous step, subscribes the member
 * locally. False when the member stopped reading (the caller leaves it); true otherwise.
 */
export async function replayPaced(state: TopicState, member: Member, pending: PendingRecovery, from: Position, frames: string[]): Promise<boolean> {
  let last = from;
  while (frames.length > 0) {
    if (!(await member.sendPaced!(frames))) return false;
    if (!state.members.has(member)) return true;
    frames = [];
    for (const publication of pending.collected) {
      if (publication.epoch !== last.epoch || publication.seq !== last.seq + 1) continue;
      frames.push(publication.frame);
      last = { seq: publication.seq, epoch: publication.epoch };
    }
    pending.collected = [];
  }
  goLiveFrom(state, member, last);
  return true;
}

/** Subscribes the member locally, its frames sent up to `last`; a resync first when the hub moved past it meanwhile. */
function goLiveFrom(state: TopicState, member: Member, last: Position): void {
  const now = state.position!;
  // A resync went out while the replay ran: this member, not yet subscribed, gets its own.
  if (now.epoch !== last.epoch || now.seq !== last.seq) member.send(resyncFrame(state.topic, now));
  member.subscribeLocal(state.topic);
}

/** How long a member whose `since` is ahead of this process waits for the hub to deliver up to it. */
export const CATCH_UP_MS = 2000;

/**
 * A `since` ahead of what this process delivered, which the broker confirmed (the client left a
 * machine that was ahead of this one): the member goes live once the hub has delivered up to
 * `since`, with what came after it, so the publications the client already holds are not sent
 * again. `pending` collects from the ack on. Still behind after CATCH_UP_MS (this process's link
 * is down): live as it is, and the client drops what it already has by `seq`. False when the member
 * stopped reading.
 */
export async function catchUp(state: TopicState, member: Member, pending: PendingRecovery, since: Position): Promise<boolean> {
  const behind = () => state.position!.epoch === since.epoch && state.position!.seq < since.seq;
  if (behind()) {
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        pending.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, CATCH_UP_MS);
      pending.wake = () => {
        if (!behind() || !state.members.has(member)) done();
      };
    });
  }
  if (!state.members.has(member)) return true;
  if (behind()) {
    member.subscribeLocal(state.topic);
    return true;
  }
  let last = since;
  const frames: string[] = [];
  for (const publication of pending.collected) {
    if (publication.epoch !== last.epoch || publication.seq !== last.seq + 1) continue;
    frames.push(publication.frame);
    last = { seq: publication.seq, epoch: publication.epoch };
  }
  pending.collected = [];
  if (frames.length > 0 && member.sendPaced !== undefined) return replayPaced(state, member, pending, last, frames);
  for (const frame of frames) member.send(frame);
  goLiveFrom(state, member, last);
  return true;
}
