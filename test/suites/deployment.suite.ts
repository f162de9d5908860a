/**
 * The DeploymentRegistry conformance suite (src/deployment/registry.ts), run on the memory and
 * Redis registries: reports replace each other, counts sum over processes, prefix and limit,
 * and a process that stops reporting is gone once its lease runs out.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { DeploymentRegistry, InstanceInfo } from "../../src/deployment/registry.ts";

/** `leaseMs`: how long a report lives; the suite waits about twice that for an expiry. */
export type DeploymentFactory = (leaseMs: number) => DeploymentRegistry | Promise<DeploymentRegistry>;

const unique = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

function status(id: string, extra: Partial<InstanceInfo> = {}): InstanceInfo {
  return { id, region: "local", connections: 0, topics: 0, startedAt: 1_700_000_000_000, draining: false, ...extra };
}

export function describeDeployment(name: string, factory: DeploymentFactory): void {
  describe(`DeploymentRegistry conformance: ${name}`, () => {
    const open: DeploymentRegistry[] = [];
    afterEach(async () => {
      await Promise.all(open.splice(0).map((r) => r.close()));
    });
    async function registry(leaseMs = 5000) {
      const r = await factory(leaseMs);
      open.push(r);
      return r;
    }

    test("every reporting process is listed, by id, with the status it reported last", async () => {
      const r = await registry();
      const [a, b] = [unique("a"), unique("b")];
      await r.report(status(b, { region: "syd", connections: 3, topics: 2 }), new Map());
      await r.report(status(a, { connections: 1 }), new Map());
      await r.report(status(a, { connections: 7, draining: true }), new Map());
      const mine = (await r.instances()).filter((i) => i.id === a || i.id === b);
      expect(mine).toEqual([status(a, { connections: 7, draining: true }), status(b, { region: "syd", connections: 3, topics: 2 })]);
    });

    test("topics: subscribers summed over processes, by name, filtered by prefix, cut at limit", async () => {
      const r = await registry();
      const ns = unique("room");
      await r.report(status(unique("p")), new Map([[`${ns}:b`, 2], [`${ns}:a`, 1], ["other:x", 4]]));
      await r.report(status(unique("q")), new Map([[`${ns}:b`, 3], [`${ns}:c`, 1]]));
      expect(await r.topics(`${ns}:`, 100)).toEqual([
        { topic: `${ns}:a`, subscribers: 1 },
        { topic: `${ns}:b`, subscribers: 5 },
        { topic: `${ns}:c`, subscribers: 1 },
      ]);
      expect(await r.topics(`${ns}:`, 2)).toEqual([
        { topic: `${ns}:a`, subscribers: 1 },
        { topic: `${ns}:b`, subscribers: 5 },
      ]);
      expect(await r.topics(`${ns}:zz`, 100)).toEqual([]);
    });

    test("a new report replaces the process's topics: a topic it no longer has is gone", async () => {
      const r = await registry();
      const [id, ns] = [unique("p"), unique("room")];
      await r.report(status(id), new Map([[`${ns}:a`, 1], [`${ns}:b`, 1]]));
      await r.report(status(id), new Map([[`${ns}:b`, 4]]));
      expect(await r.topics(ns, 100)).toEqual([{ topic: `${ns}:b`, subscribers: 4 }]);
      await r.report(status(id), new Map());
      expect(await r.topics(ns, 100)).toEqual([]);
    });

    test("a live map with its changes: each report has the counts of its call, later changes wait for the next", async () => {
      const r = await registry();
      const [id, ns] = [unique("p"), unique("room")];
      const live = new Map([[`${ns}:a`, 1], [`${ns}:b`, 2]]);
      await r.report(status(id), live, null);
      live.set(`${ns}:b`, 5);
      live.delete(`${ns}:a`);
      live.set(`${ns}:c`, 1);
      // Changed in place after the call, not reported yet: the registry still has the last report.
      expect(await r.topics(ns, 100)).toEqual([{ topic: `${ns}:a`, subscribers: 1 }, { topic: `${ns}:b`, subscribers: 2 }]);
      await r.report(status(id), live, new Set([`${ns}:a`, `${ns}:b`, `${ns}:c`]));
      live.set(`${ns}:c`, 7);
      expect(await r.topics(ns, 100)).toEqual([{ topic: `${ns}:b`, subscribers: 5 }, { topic: `${ns}:c`, subscribers: 1 }]);
      await r.report(status(id), live, new Set([`${ns}:c`]));
      await r.report(status(id), live, new Set());
      expect(await r.topics(ns, 100)).toEqual([{ topic: `${ns}:b`, subscribers: 5 }, { topic: `${ns}:c`, subscribers: 7 }]);
    });

    test("an unchanged report keeps the topics alive past the lease", async () => {
      const r = await registry(400);
      const [id, ns] = [unique("p"), unique("room")];
      const topics = new Map([[`${ns}:a`, 2]]);
      for (let i = 0; i < 8; i++) {
        await r.report(status(id), topics);
        await Bun.sleep(100);
      }
      expect(await r.topics(ns, 100)).toEqual([{ topic: `${ns}:a`, subscribers: 2 }]);
    });

    test("a process that stops reporting is gone, with its topics, once its lease runs out", async () => {
      const r = await registry(400);
      const [quiet, alive, ns] = [unique("quiet"), unique("alive"), unique("room")];
      await r.report(status(quiet), new Map([[`${ns}:a`, 2]]));
      await r.report(status(alive), new Map([[`${ns}:a`, 1]]));
      expect(await r.topics(ns, 100)).toEqual([{ topic: `${ns}:a`, subscribers: 3 }]);
      const until = Date.now() + 900;
      while (Date.now() < until) {
        await r.report(status(alive), new Map([[`${ns}:a`, 1]]));
        await Bun.sleep(100);
      }
      const ids = (await r.instances()).map((i) => i.id);
      expect(ids).toContain(alive);
      expect(ids).not.toContain(quiet);
      expect(await r.topics(ns, 100)).toEqual([{ topic: `${ns}:a`, subscribers: 1 }]);
    });

    test("remove forgets a process at once", async () => {
      const r = await registry();
      const [id, ns] = [unique("p"), unique("room")];
      await r.report(status(id), new Map([[`${ns}:a`, 1]]));
      await r.remove(id);
      expect((await r.instances()).map((i) => i.id)).not.toContain(id);
      expect(await r.topics(ns, 100)).toEqual([]);
    });
  });
}
