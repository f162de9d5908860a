/**
 * `GET /api/history/:topic` on top of Broker.history (SPEC §6): with a `since` the broker can
 * serve, the messages after it (at most `limit`); otherwise what the topic still keeps — the last
 * `limit` without `since`, the oldest `limit` when `since` is in another epoch or too old
 * (`recovered: false`).
 */
import type { Broker, Position, Publication } from "../broker/broker.ts";

export interface HistoryPage {
  position: Position;
  recovered: boolean;
  /** Serialized `message` frames, oldest first. */
  frames: string[];
}

export async function readHistory(broker: Broker, topic: string, since: Position | undefined, limit: number, historySize: number): Promise<HistoryPage> {
  if (since !== undefined) {
    const result = await broker.history(topic, since);
    if (result.recovered) {
      return { position: result.position, recovered: true, frames: result.publications.slice(0, limit).map((p) => p.frame) };
    }
  }
  // Without since: the last `limit`. With a since history cannot serve: the oldest kept, as far
  // back as HISTORY_SIZE (or 1000) reaches.
  const { position, kept } = await keptPublications(broker, topic, since === undefined ? limit : Math.max(historySize, limit, 1000));
  const chosen = since === undefined ? kept.slice(-limit) : kept.slice(0, limit);
  return { position, recovered: false, frames: chosen.map((p) => p.frame) };
}

/**
 * The publications the topic keeps, at most `maxBack` of the newest. The broker serves
 * "everything after a position" only when all of it is kept, and whether it can is monotone in
 * the position: ask for `maxBack` (usually kept), else search for the oldest position it serves
 * (≤ log2(maxBack) more reads). A publication racing the reads only adds newer entries; an epoch
 * change in between leaves fewer (the next read sees the new epoch).
 */
async function keptPublications(broker: Broker, topic: string, maxBack: number): Promise<{ position: Position; kept: Publication[] }> {
  const { position } = await broker.history(topic);
  const probe = (back: number) => broker.history(topic, { seq: Math.max(0, position.seq - back), epoch: position.epoch });
  const widest = await probe(maxBack);
  if (widest.recovered) return { position: widest.position, kept: widest.publications };
  let best = { position, kept: [] as Publication[] };
  let [ok, failed] = [0, Math.min(maxBack, position.seq)];
  while (failed - ok > 1) {
    const mid = Math.floor((ok + failed) / 2);
    const result = await probe(mid);
    if (result.recovered) {
      ok = mid;
      best = { position: result.position, kept: result.publications };
    } else {
      failed = mid;
    }
  }
  return best;
}
