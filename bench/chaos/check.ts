/**
 * The chaos run's invariants (SPEC §3 "Delivery", §7), checked on everything every client saw and
 * every publisher was told. Pure: logs in, findings out.
 *
 * Violations break the SPEC. Allowances are what the documentation says may happen, counted and
 * cited so a reader sees they were modelled, not ignored.
 */
import type { ClientLog, FaultRecord, Position, PublishRecord, TopicHistory } from "./log.ts";

export interface Finding {
  kind: string;
  detail: string;
}

export interface Allowance {
  kind: string;
  doc: string;
  count: number;
  example: string;
}

export interface CheckInput {
  clients: ClientLog[];
  publishes: PublishRecord[];
  histories: TopicHistory[];
  faults: FaultRecord[];
}

export interface CheckResult {
  violations: Finding[];
  allowances: Allowance[];
  stats: Record<string, number>;
}

const ALLOWANCE_DOCS: Record<string, string> = {
  "duplicate after resubscribe": "docs/protocol.md, Delivery: a machine that cannot catch up to a confirmed since within 2 s goes live as it is, 'and may see a seq it already has'",
  "key published again in a new epoch": "docs/protocol.md, Delivery: 'Keys live with the topic's history: when that is lost (a new epoch), so are they'",
  "applied after unavailable": "docs/protocol.md, Delivery: 'With Redis stalled rather than down ..., a publish that timed out can still be applied once Redis resumes'",
  "outcome unknown (no answer)": "a publish whose answer never came (server killed, request timed out) may or may not be published",
};

const where = (topic: string, p: Position) => `${topic}@${p.epoch}:${p.seq}`;

class Checker {
  readonly violations: Finding[] = [];
  private readonly allowed = new Map<string, Allowance>();
  /** (topic, epoch, seq) → the data as JSON, from whoever saw it first. */
  private readonly data = new Map<string, { json: string; from: string }>();
  /** key → the positions it was seen or acked at. */
  private readonly keyAt = new Map<string, Map<string, Position & { topic: string }>>();
  readonly stats: Record<string, number> = { messages: 0, resyncs: 0, notRecovered: 0, recovered: 0, reconnects: 0 };

  violate(kind: string, detail: string): void {
    this.violations.push({ kind, detail });
  }

  allow(kind: string, example: string): void {
    const entry = this.allowed.get(kind) ?? { kind, doc: ALLOWANCE_DOCS[kind] ?? "", count: 0, example };
    entry.count += 1;
    this.allowed.set(kind, entry);
  }

  allowances(): Allowance[] {
    return [...this.allowed.values()];
  }

  /** Same (topic, epoch, seq) → same data everywhere; remembers where each key landed. */
  sawData(topic: string, at: Position, data: unknown, from: string): void {
    const id = where(topic, at);
    const json = JSON.stringify(data);
    const known = this.data.get(id);
    if (known === undefined) this.data.set(id, { json, from });
    else if (known.json !== json) this.violate("different data for one seq", `${id}: ${from} saw ${json}, ${known.from} saw ${known.json}`);
    const key = (data as { k?: unknown } | null)?.k;
    if (typeof key !== "string") return;
    let seen = this.keyAt.get(key);
    if (seen === undefined) this.keyAt.set(key, (seen = new Map()));
    seen.set(id, { topic, ...at });
  }

  keysLanded(key: string): (Position & { topic: string })[] {
    return [...(this.keyAt.get(key)?.values() ?? [])];
  }

  keys(): string[] {
    return [...this.keyAt.keys()];
  }
}

interface TopicState {
  /** The position this client holds (null: none yet). */
  at: Position | null;
  /** Subscribed on the current socket (its ack came). */
  subscribed: boolean;
  /** After a resubscribe with `since` answered by a machine behind: seqs up to this one may come again. */
  dupAllowedUpTo: number;
}

/** One client's log, replayed: order, gaps, duplicates, epochs (SPEC §3 "Delivery"). */
function checkClient(checker: Checker, client: ClientLog): Map<string, Position | null> {
  const topics = new Map<string, TopicState>();
  const state = (topic: string) => {
    let s = topics.get(topic);
    if (s === undefined) topics.set(topic, (s = { at: null, subscribed: false, dupAllowedUpTo: -1 }));
    return s;
  };
  const subs = new Map<number, { topic: string; since: Position | null }>();
  const who = client.id;
  for (const event of client.events) {
    if (event.kind === "connect") {
      checker.stats.reconnects! += 1;
      subs.clear();
      for (const s of topics.values()) {
        s.subscribed = false;
        s.dupAllowedUpTo = -1;
      }
      continue;
    }
    if (event.kind === "close") {
      checker.stats[`close${event.code}`] = (checker.stats[`close${event.code}`] ?? 0) + 1;
      continue;
    }
    if (event.kind === "subscribe") {
      subs.set(event.ref, { topic: event.topic, since: event.since });
      continue;
    }
    const f = event.frame;
    if (f.type === "ack") {
      const sub = subs.get(f.ref);
      if (sub === undefined) continue;
      const s = state(sub.topic);
      s.subscribed = true;
      if (sub.since !== null && f.recovered === true) {
        checker.stats.recovered! += 1;
        if (f.epoch !== sub.since.epoch) checker.violate("recovered in another epoch", `${who} conn ${event.conn}: since ${where(sub.topic, sub.since)}, ack ${where(sub.topic, f)} recovered:true`);
        s.at = sub.since;
        if (f.seq < sub.since.seq) s.dupAllowedUpTo = sub.since.seq;
      } else {
        if (sub.since !== null) checker.stats.notRecovered! += 1;
        s.at = { epoch: f.epoch, seq: f.seq };
      }
      continue;
    }
    if (f.type === "resync") {
      checker.stats.resyncs! += 1;
      const s = state(f.topic);
      // Live messages go on after the resync's seq: one below the held seq of the same epoch would repeat some.
      if (s.at !== null && s.at.epoch === f.epoch && f.seq < s.at.seq) {
        checker.violate("resync behind the held position", `${who} conn ${event.conn}: resync ${where(f.topic, f)}, held ${where(f.topic, s.at)}`);
      }
      s.at = { epoch: f.epoch, seq: f.seq };
      continue;
    }
    if (f.type !== "message") continue;
    checker.stats.messages! += 1;
    const s = state(f.topic);
    const at = { epoch: f.epoch, seq: f.seq };
    const label = `${who} conn ${event.conn}: ${where(f.topic, at)}`;
    checker.sawData(f.topic, at, f.data, who);
    if (!s.subscribed || s.at === null) {
      checker.violate("message before the subscribe ack", label);
      s.at = at;
      continue;
    }
    if (s.at.epoch !== at.epoch) {
      checker.violate("new epoch without resync", `${label} (held ${where(f.topic, s.at)})`);
      s.at = at;
    } else if (at.seq === s.at.seq + 1) {
      s.at = at;
    } else if (at.seq <= s.at.seq) {
      if (at.seq <= s.dupAllowedUpTo) checker.allow("duplicate after resubscribe", label);
      else checker.violate("duplicate", `${label} (held ${where(f.topic, s.at)})`);
    } else {
      checker.violate("gap", `${label} after ${s.at.seq}: ${at.seq - s.at.seq - 1} missing, no resync`);
      s.at = at;
    }
  }
  const last = new Map<string, Position | null>();
  for (const [topic, s] of topics) last.set(topic, s.subscribed ? s.at : null);
  return last;
}

function overlapsStall(faults: FaultRecord[], t0: number, t1: number): boolean {
  return faults.some((f) => (f.kind === "redis-stop-long" || f.kind === "redis-stop-short" || f.kind === "blackhole" || f.kind === "blackhole-replies" || f.kind === "primary-stop-short") && f.start <= t1 && f.end >= t0 - 1000);
}

/** What each publisher was told against what landed (SPEC §3 `key`, `unavailable`). */
function checkPublishes(checker: Checker, input: CheckInput): void {
  for (const p of input.publishes) {
    const acks = p.attempts.filter((a) => a.outcome === "acked");
    for (const a of acks) checker.sawData(p.topic, { epoch: a.epoch!, seq: a.seq! }, p.data, `ack of ${p.key}`);
    const landed = checker.keysLanded(p.key);
    const byEpoch = new Map<string, number[]>();
    for (const l of landed) byEpoch.set(l.epoch, [...(byEpoch.get(l.epoch) ?? []), l.seq]);
    for (const [epoch, seqs] of byEpoch) {
      if (seqs.length > 1) checker.violate("one key, two seqs", `${p.key} on ${p.topic}@${epoch}: seqs ${seqs.sort((a, b) => a - b).join(", ")}`);
    }
    if (byEpoch.size > 1) checker.allow("key published again in a new epoch", `${p.key}: epochs ${[...byEpoch.keys()].join(", ")}`);
    // A landing in an epoch no ack names came from an attempt told something else (two in one
    // epoch are the violation above).
    const ackedEpochs = new Set(acks.map((a) => a.epoch));
    const unexplained = landed.filter((l) => !ackedEpochs.has(l.epoch));
    if (unexplained.length === 0) continue;
    const failed = p.attempts.filter((a) => a.outcome !== "acked");
    const told = p.attempts.map((a) => `${a.outcome}${a.outcome === "acked" ? ` ${a.epoch}:${a.seq}` : ""} at ${a.t0}-${a.t1}${faultsAt(input.faults, a.t0, a.t1)}`);
    const example = `${p.key}: told ${told.join("; ")}; landed at ${landed.map((l) => where(l.topic, l)).join(", ")}`;
    if (failed.some((a) => a.outcome === "timeout")) checker.allow("outcome unknown (no answer)", example);
    else if (failed.some((a) => a.outcome === "unavailable" && overlapsStall(input.faults, a.t0, a.t1))) checker.allow("applied after unavailable", example);
    else {
      checker.violate("published after unavailable", `${p.key} on ${p.topic}: told ${told.join("; ")}; landed at ${unexplained.map((l) => where(l.topic, l)).join(", ")}`);
    }
  }
}

function faultsAt(faults: FaultRecord[], t0: number, t1: number): string {
  const during = faults.filter((f) => f.start <= t1 && f.end >= t0 - 1000).map((f) => `${f.kind} (${f.target})`);
  return during.length === 0 ? "" : ` during ${during.join(", ")}`;
}

/** History at the end: contiguous, and every acked publication of the current epoch in it. */
function checkHistories(checker: Checker, input: CheckInput): void {
  for (const h of input.histories) {
    let expected = h.messages[0]?.seq;
    for (const m of h.messages) {
      checker.sawData(h.topic, m, m.data, "history");
      if (m.seq !== expected) checker.violate("history gap", `${h.topic}@${h.epoch}: ${m.seq} after ${expected! - 1}`);
      expected = m.seq + 1;
    }
    const kept = new Set(h.messages.map((m) => m.seq));
    for (const p of input.publishes) {
      if (p.topic !== h.topic) continue;
      for (const a of p.attempts) {
        if (a.outcome === "acked" && a.epoch === h.epoch && !kept.has(a.seq!) && a.seq! >= (h.messages[0]?.seq ?? 1)) {
          checker.violate("acked publication missing from history", `${p.key} acked ${where(p.topic, a as Position)}`);
        }
      }
    }
  }
}

/** Runs every check. `finals`: where each client says it is now, compared with the history's latest. */
export function check(input: CheckInput): CheckResult {
  const checker = new Checker();
  const latest = new Map(input.histories.map((h) => [h.topic, { epoch: h.epoch, seq: h.seq }]));
  for (const client of input.clients) {
    const last = checkClient(checker, client);
    for (const [topic, end] of latest) {
      const at = last.get(topic) ?? null;
      if (at === null) checker.violate("not subscribed at the end", `${client.id} ${topic}`);
      else if (at.epoch !== end.epoch || at.seq !== end.seq) checker.violate("behind at the end", `${client.id} holds ${where(topic, at)}, history ${where(topic, end)}`);
    }
  }
  // Histories before publishes: what landed only in history counts for the key checks too.
  checkHistories(checker, input);
  checkPublishes(checker, input);
  const acked = input.publishes.filter((p) => p.attempts.some((a) => a.outcome === "acked")).length;
  return {
    violations: checker.violations,
    allowances: checker.allowances(),
    stats: { ...checker.stats, publishes: input.publishes.length, acked, retried: input.publishes.filter((p) => p.attempts.length > 1).length },
  };
}
