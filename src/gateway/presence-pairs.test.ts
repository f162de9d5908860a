import { describe, expect, test } from "bun:test";
import { PresencePairs } from "./presence-pairs.ts";

describe("PresencePairs answers as two Sets (wanted, confirmed)", () => {
  test("random sequences of every operation", () => {
    const members = [{ id: "a" }, { id: "b" }, { id: "c" }];
    const topics = ["room:1", "room:2"];
    let seed = 7;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let run = 0; run < 200; run++) {
      const pairs = new PresencePairs<{ id: string }>();
      const wanted = new Set<string>();
      const confirmed = new Set<string>();
      for (let step = 0; step < 60; step++) {
        const member = members[next(members.length)]!;
        const topic = topics[next(topics.length)]!;
        const key = `${member.id} ${topic}`;
        switch (next(4)) {
          case 0:
            pairs.want(member, topic);
            wanted.add(key);
            break;
          case 1:
            expect(pairs.unwant(member, topic)).toBe(wanted.delete(key));
            break;
          case 2:
            pairs.confirm(member, topic);
            confirmed.add(key);
            break;
          case 3:
            pairs.unconfirm(member, topic);
            confirmed.delete(key);
            break;
        }
        for (const m of members) {
          for (const t of topics) {
            expect(pairs.isWanted(m, t)).toBe(wanted.has(`${m.id} ${t}`));
            expect(pairs.isConfirmed(m, t)).toBe(confirmed.has(`${m.id} ${t}`));
          }
        }
      }
    }
  });
});
