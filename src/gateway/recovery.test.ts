import { describe, expect, test } from "bun:test";
import { mergeRecovery } from "./recovery.ts";
import type { HistoryResult, Publication } from "../broker/broker.ts";

const E = "e1";
const pub = (seq: number, epoch = E): Publication => ({ topic: "room:a", seq, epoch, frame: `m${seq}${epoch}` });
const history = (pubs: Publication[], recovered = true, seq = pubs.at(-1)?.seq ?? 0): HistoryResult => ({
  position: { seq, epoch: E },
  publications: pubs,
  recovered,
});

describe("recovery merge", () => {
  test("history alone covers the gap", () => {
    const r = mergeRecovery({ seq: 2, epoch: E }, { seq: 5, epoch: E }, history([pub(3), pub(4), pub(5)]), []);
    expect(r).toEqual({ recovered: true, frames: ["m3e1", "m4e1", "m5e1"] });
  });

  test("live publications collected during the read fill the tail, without duplicates", () => {
    const r = mergeRecovery({ seq: 2, epoch: E }, { seq: 7, epoch: E }, history([pub(3), pub(4), pub(5)]), [pub(5), pub(6), pub(7)]);
    expect(r.frames).toEqual(["m3e1", "m4e1", "m5e1", "m6e1", "m7e1"]);
  });

  test("history newer than what this process delivered is cut at the delivered position", () => {
    const r = mergeRecovery({ seq: 2, epoch: E }, { seq: 4, epoch: E }, history([pub(3), pub(4), pub(5)]), []);
    expect(r.frames).toEqual(["m3e1", "m4e1"]);
  });

  test("a hole between history and live is not recovered", () => {
    const r = mergeRecovery({ seq: 2, epoch: E }, { seq: 7, epoch: E }, history([pub(3), pub(4)]), [pub(6), pub(7)]);
    expect(r).toEqual({ recovered: false, frames: [] });
  });

  test("trimmed history or another epoch is not recovered", () => {
    expect(mergeRecovery({ seq: 2, epoch: E }, { seq: 5, epoch: E }, history([], false, 5), []).recovered).toBe(false);
    expect(mergeRecovery({ seq: 2, epoch: "old" }, { seq: 5, epoch: E }, history([pub(3)], true), []).recovered).toBe(false);
  });

  test("a client already at the delivered position recovers nothing, successfully", () => {
    expect(mergeRecovery({ seq: 5, epoch: E }, { seq: 5, epoch: E }, history([], true, 5), [])).toEqual({ recovered: true, frames: [] });
  });
});
