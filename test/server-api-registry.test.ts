/**
 * SPEC §6, the deployment as a whole: three Switchboard processes on one real Redis (and more
 * added to be stopped, drained or killed). `/api/topics` and `/api/info` come from the
 * deployment registry and lag at most a few seconds; a machine that does not answer a
 * cross-machine call delays it by at most ~1 s and is named.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import type { TestServer } from "./support/server.ts";
import { startCluster, type TestCluster } from "./support/cluster.ts";
import { api, tokenSocket } from "./support/server-api.ts";

let cluster: TestCluster;
let A: TestServer, B: TestServer, C: TestServer;
const clients = new Set<TestClient>();
const unique = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  cluster = await startCluster(["node-a", "node-b", "node-c"]);
  [A, B, C] = cluster.nodes as [TestServer, TestServer, TestServer];
}, 30_000);
afterAll(async () => {
  await closeAll(clients);
  await cluster?.stop();
});

/** A socket of `user` on `server`, by first-message auth. */
const socket = (server: TestServer, user: string, jwt?: string) => tokenSocket(clients, server, A, user, jwt);

/** Waits until the registry lists the process (its first heartbeat lands at start). */
async function listed(id: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!((await api(A, "GET", "/api/info")).body.instances as { id: string }[]).some((i) => i.id === id)) {
    if (Date.now() > deadline) throw new Error(`${id} not in /api/info after 3 s`);
    await Bun.sleep(50);
  }
}

describe("GET /api/topics and /api/info: the whole deployment, lagging at most 5 s", () => {
  test("a machine says ready (/readyz 200) only once the registry lists it: the others' calls wait for it from then on", async () => {
    const F = await cluster.add("node-f", { DRAIN_MS: "200" }); // returns at its first /readyz 200
    const ids = ((await api(A, "GET", "/api/info")).body.instances as { id: string }[]).map((i) => i.id);
    expect(ids).toContain("node-f");
    const u = unique("u");
    await socket(F, u);
    expect((await api(A, "POST", "/api/subscribe", { user: u, topic: unique("room:f") })).body).toEqual({ sockets: 1 });
    F.proc.kill("SIGTERM"); // drains and leaves the registry: the tests below see three machines
    await F.proc.exited;
  });

  test("every process is listed with its connections; topics sum subscribers over machines", async () => {
    const ns = unique("room:reg");
    const u = unique("u");
    const socks = [await socket(A, u), await socket(B, u), await socket(B, u)];
    for (const s of socks) await s.subscribe(`${ns}:x`);
    await socks[0]!.subscribe(`${ns}:y`);
    const deadline = Date.now() + 5000;
    let topics: unknown;
    while (Date.now() < deadline) {
      topics = (await api(C, "GET", `/api/topics?prefix=${ns}`)).body;
      if (JSON.stringify(topics) === JSON.stringify({ topics: [{ topic: `${ns}:x`, subscribers: 3 }, { topic: `${ns}:y`, subscribers: 1 }] })) break;
      await Bun.sleep(200);
    }
    expect(topics).toEqual({ topics: [{ topic: `${ns}:x`, subscribers: 3 }, { topic: `${ns}:y`, subscribers: 1 }] });
    expect((await api(A, "GET", `/api/topics?prefix=${ns}&limit=1`)).body).toEqual({ topics: [{ topic: `${ns}:x`, subscribers: 3 }] });

    const info = (await api(A, "GET", "/api/info")).body as { instances: Record<string, unknown>[] };
    expect(info.instances.map((i) => i.id)).toEqual(expect.arrayContaining(["node-a", "node-b", "node-c"]));
    for (const i of info.instances) {
      expect(i).toEqual({ id: i.id, region: "local", connections: expect.any(Number), topics: expect.any(Number), startedAt: expect.any(Number), draining: false });
    }
    expect(info.instances.find((i) => i.id === "node-b")!.connections as number).toBeGreaterThanOrEqual(2);
  });

  test("a machine that stops answering: calls answer after ~1 s naming it; once it is killed it leaves /api/info within a few seconds", async () => {
    const D = await cluster.add("node-d");
    const user = unique("u");
    const onA = await socket(A, user);
    await socket(D, user);
    await listed("node-d");
    D.proc.kill("SIGSTOP");
    try {
      const started = Date.now();
      const res = await api(A, "POST", "/api/disconnect", { user });
      const took = Date.now() - started;
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ sockets: 1, unanswered: ["node-d"] });
      expect(took).toBeGreaterThanOrEqual(900);
      expect(took).toBeLessThan(2000);
      expect((await onA.waitClose()).code).toBe(4003);
    } finally {
      D.proc.kill("SIGKILL");
    }
    const started = Date.now();
    for (;;) {
      const ids = ((await api(B, "GET", "/api/info")).body.instances as { id: string }[]).map((i) => i.id);
      if (!ids.includes("node-d")) break;
      expect(Date.now() - started).toBeLessThan(5000);
      await Bun.sleep(200);
    }
    expect((await api(B, "POST", "/api/subscribe", { user: unique("u"), topic: "room:after" })).body).toEqual({ sockets: 0 });
  });

  test("a draining process shows draining:true at once and leaves /api/info when it exits", async () => {
    const E = await cluster.add("node-e", { DRAIN_MS: "1500" });
    // Three sockets: their 1012 closes are spread over DRAIN_MS, so the drain lasts about a second.
    for (let i = 0; i < 3; i++) await socket(E, unique("u"));
    await listed("node-e");
    const before = ((await api(A, "GET", "/api/info")).body.instances as { id: string; draining: boolean }[]).find((i) => i.id === "node-e");
    expect(before?.draining).toBe(false);
    E.proc.kill("SIGTERM");
    const states: { at: number; draining: boolean | undefined }[] = [];
    const started = Date.now();
    while (Date.now() - started < 5000) {
      const e = ((await api(A, "GET", "/api/info")).body.instances as { id: string; draining: boolean }[]).find((i) => i.id === "node-e");
      states.push({ at: Date.now() - started, draining: e?.draining });
      if (e === undefined) break;
      await Bun.sleep(50);
    }
    const firstDraining = states.findIndex((s) => s.draining === true);
    expect(firstDraining).toBeGreaterThanOrEqual(0);
    expect(states[firstDraining]!.at).toBeLessThan(500); // reported at the signal, not at the next beat
    expect(states.slice(firstDraining).every((s) => s.draining !== false)).toBe(true);
    expect(states.at(-1)!.draining).toBeUndefined(); // gone once it exited
    expect(await E.proc.exited).toBe(0);
  });
});

afterAll(() => {
  for (const node of cluster?.nodes ?? []) expect(node.faults()).toEqual([]);
});
