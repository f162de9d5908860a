/**
 * Merging a history read with the live publications delivered while it ran (SPEC "Delivery":
 * replay, then live, with no gap or duplicate). Pure; unit-tested in recovery.test.ts.
 */
import type { HistoryResult, Position, Publication } from "../broker/broker.ts";

export interface Replay {
  /** True when every publication after `since` up to `delivered` is in `frames`. */
  recovered: boolean;
  /** The `message` frames to send, in seq order. */
  frames: string[];
}

/**
 * @param since     where the client says it stopped
 * @param delivered the last position this process delivered live; the replay ends there,
 *                  because everything after it will reach the client live
 * @param history   the broker's answer for `since`
 * @param collected publications delivered live while history was being read
 */
export function mergeRecovery(since: Position, delivered: Position, history: HistoryResult, collected: Publication[]): Replay {
  const failed: Replay = { recovered: false, frames: [] };
  if (!history.recovered || since.epoch !== delivered.epoch) return failed;
  if (since.seq >= delivered.seq) return { recovered: true, frames: [] };
  const bySeq = new Map<number, Publication>();
  for (const source of [history.publications, collected]) {
    for (const p of source) {
      if (p.epoch === since.epoch && p.seq > since.seq && p.seq <= delivered.seq) bySeq.set(p.seq, p);
    }
  }
  const frames: string[] = [];
  for (let seq = since.seq + 1; seq <= delivered.seq; seq++) {
    const publication = bySeq.get(seq);
    if (publication === undefined) return failed;
    frames.push(publication.frame);
  }
  return { recovered: true, frames };
}
