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
  const { position, kept } = await keptPublications(broker, topic, Math.max(historySize, limit));
  const chosen = since === undefined ? kept.slice(-limit) : kept.slice(0, limit);
  return { position, recovered: false, frames: chosen.map((p) => p.frame) };
}

/**
 * What the topic keeps: the broker serves "everything after a position" only when all of it is
 * kept, so ask from `seq - size` (history keeps at least `size`), then from `seq - limit`. A
 * publication racing the reads moves `seq`: the second attempt starts from the new position.
 */
async function keptPublications(broker: Broker, topic: string, size: number): Promise<{ position: Position; kept: Publication[] }> {
  let { position } = await broker.history(topic);
  for (const back of [size, Math.min(size, 1000), 100, 1]) {
    const from = { seq: Math.max(0, position.seq - back), epoch: position.epoch };
    const result = await broker.history(topic, from);
    if (result.recovered) return { position: result.position, kept: result.publications };
    position = result.position;
  }
  return { position, kept: [] };
}
