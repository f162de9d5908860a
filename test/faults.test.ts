/**
 * Redis faults (SPEC §3 "Delivery"): Redis dies while three processes publish and deliver. Nothing crashes,
 * `/readyz` tells the truth, publishing answers `unavailable` fast instead of lying, and no
 * acknowledged publication is lost or duplicated silently: it arrives once, in order, or the
 * subscriber is told with `resync`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll, type Frame } from "./support/client.ts";
import { apiPublish, loginSession, type Session, type TestServer } from "./support/server.ts";
import { startCluster, type TestCluster } from "./support/cluster.ts";
import { scrape } from "./support/metrics.ts";

let cluster: TestCluster;
let nodes: TestServer[];
const sessions = new Map<string, Session>();
const clients = new Set<TestClient>();
const topic = (name: string) => `room:${name}-${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  cluster = await startCluster(["fault-a", "fault-b", "fault-c"]);
  nodes = cluster.nodes;
  for (const user of ["alice", "bob", "carol"]) sessions.set(user, await loginSession(nodes[0]!, user, `${user}-password`));
}, 30_000);
afterAll(async () => {
  await closeAll(clients);
  await cluster?.stop();
});

async function connect(server: TestServer, user: string): Promise<TestClient> {
  const client = await TestClient.connect(server.wsUrl, { cookie: sessions.get(user)!.cookie }, 5000);
  clients.add(client);
  return client;
}

async function readyz(server: TestServer): Promise<number> {
  try {
    const res = await fetch(`${server.url}/readyz`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

async function waitReady(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await Promise.all(nodes.map(readyz))).every((s) => s === 200)) return;
    await Bun.sleep(50);
  }
  throw new Error(`not every process was ready within ${timeoutMs} ms`);
}

const key = (f: { epoch: string; seq: number }) => `${f.epoch}:${f.seq}`;

/** What one subscriber saw: messages and resyncs of one topic, in arrival order. */
function stream(client: TestClient, room: string): Frame[] {
  return client.frames.filter((f) => (f.type === "message" || f.type === "resync") && f.topic === room);
}

/**
 * A stream in a line, for a failure's message: runs of contiguous seq per epoch and each resync,
 * e.g. "e1a2: 1–40 | resync→9f3c:0 | 9f3c: 1–25".
 */
function summary(frames: Frame[]): string {
  const parts: string[] = [];
  let run: { epoch: string; from: number; to: number } | null = null;
  const close = () => {
    if (run !== null) parts.push(`${run.epoch.slice(0, 4)}: ${run.from === run.to ? run.from : `${run.from}–${run.to}`}`);
    run = null;
  };
  for (const f of frames) {
    if (f.type === "resync") {
      close();
      parts.push(`resync→${String(f.epoch).slice(0, 4)}:${f.seq}`);
    } else if (run !== null && f.epoch === run.epoch && f.seq === run.to + 1) run.to = f.seq;
    else {
      close();
      run = { epoch: f.epoch, from: f.seq, to: f.seq };
    }
  }
  close();
  return parts.join(" | ") || "nothing";
}

/** Checks SPEC delivery on one subscriber's stream: no duplicate, contiguous seq within an epoch,
 * and a new epoch only right after a `resync` into it. `who` names the subscriber in a failure. */
function checkStream(frames: Frame[], who: string): void {
  const seen = new Set<string>();
  let position: { seq: number; epoch: string } | null = null;
  for (const f of frames) {
    if (f.type === "resync") {
      position = { seq: f.seq, epoch: f.epoch };
      continue;
    }
    expect(seen.has(key(f as any)), `${who}: ${key(f as any)} delivered twice; stream ${summary(frames)}`).toBe(false);
    seen.add(key(f as any));
    if (position !== null) {
      const after = `${who}: after ${key(position)} came ${key(f as any)}; stream ${summary(frames)}`;
      expect(f.epoch, after).toBe(position.epoch);
      expect(f.seq, after).toBe(position.seq + 1);
    }
    position = { seq: f.seq, epoch: f.epoch };
  }
}

describe("Redis killed while publishers run, then restarted", () => {
  test("no process exits; /readyz 503 then 200; publishes answered unavailable within 1 s; every acked publication reaches every subscriber once, in order", async () => {
    const room = topic("outage");
    const users = ["alice", "bob", "carol"];
    const subscribers: TestClient[] = [];
    const who: string[] = [];
    for (const [n, server] of nodes.entries()) {
      for (let i = 0; i < 4; i++) {
        subscribers.push(await connect(server, users[(n + i) % 3]!));
        who.push(`subscriber ${subscribers.length - 1} (${users[(n + i) % 3]} on ${cluster.nodes[n]!.url})`);
      }
    }
    for (const s of subscribers) await s.subscribe(room);
    const publishers = await Promise.all(nodes.map((server, n) => connect(server, users[n]!)));

    /** `sentMs`: when the publish left, ms after the publishers started (the kill's and restart's times below). */
    type Outcome = { ok: boolean; code?: string; seq?: number; sentMs: number; latencyMs: number; data: string };
    const outcomes: Outcome[] = [];
    const t0 = Date.now();
    const at: { killMs?: number; restartMs?: number } = {};
    let running = true;
    const publishing = publishers.map(async (p, n) => {
      for (let i = 0; running && i < 2000; i++) {
        const data = `p${n}-${i}`;
        const sent = Date.now();
        const reply = await p.request({ type: "publish", topic: room, data }, 5000);
        const latencyMs = Date.now() - sent;
        const sentMs = sent - t0;
        if (reply.type === "ack") outcomes.push({ ok: true, seq: reply.seq, sentMs, latencyMs, data });
        else outcomes.push({ ok: false, code: reply.code, sentMs, latencyMs, data });
        await Bun.sleep(30);
      }
    });
    const timeline = () => `Redis killed at ${at.killMs} ms, restarted at ${at.restartMs} ms`;
    const described = (o: Outcome) => `${o.data} (${o.ok ? `seq ${o.seq}` : o.code}, sent at ${o.sentMs} ms, answered in ${o.latencyMs} ms)`;
    const statuses = new Map<number, number[]>(nodes.map((_, n) => [n, []]));
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const now = await Promise.all(nodes.map(readyz));
        now.forEach((s, n) => statuses.get(n)!.push(s));
        await Bun.sleep(100);
      }
    })();

    await Bun.sleep(800);
    at.killMs = Date.now() - t0;
    await cluster.redis.kill();
    await Bun.sleep(300);
    const httpStarted = Date.now();
    const httpDuringOutage = await apiPublish(nodes[1]!, { topic: room, data: "http-during-outage" });
    const httpLatencyMs = Date.now() - httpStarted;
    await Bun.sleep(2700);
    at.restartMs = Date.now() - t0;
    await cluster.redis.restart();
    await waitReady(5000);
    await Bun.sleep(800);
    running = false;
    await Promise.all(publishing);
    polling = false;
    await poll;

    // No process exited.
    for (const server of nodes) expect(server.proc.exitCode, `${server.url} exited (${server.proc.exitCode}); last log lines: ${server.logs().trim().split("\n").slice(-5).join(" | ")}`).toBeNull();
    // /readyz went 503 during the outage and is 200 again.
    for (const [n, seen] of statuses) {
      const polled = `${nodes[n]!.url} /readyz every 100 ms: ${seen.join(" ")} (${timeline()})`;
      expect(seen, polled).toContain(503);
      expect(seen.at(-1), polled).toBe(200);
    }
    // Publishes during the outage were refused with `unavailable`, fast.
    const refused = outcomes.filter((o) => !o.ok);
    expect(refused.length, `no publish was refused (${outcomes.length} answered; ${timeline()})`).toBeGreaterThan(0);
    for (const o of refused) {
      expect(o.code, `refused publish ${described(o)}`).toBe("unavailable");
      expect(o.latencyMs, `refused publish over the 1 s bound: ${described(o)}`).toBeLessThan(1000);
    }
    const http = `/api/publish during the outage: ${httpDuringOutage.status} ${JSON.stringify(httpDuringOutage.body)} in ${httpLatencyMs} ms`;
    expect(httpDuringOutage.status, http).toBe(503);
    expect(httpDuringOutage.body.error.code, http).toBe("unavailable");
    expect(httpLatencyMs, http).toBeLessThan(1000);
    const acked = outcomes.filter((o) => o.ok);
    expect(acked.length, `only ${acked.length} publishes acked of ${outcomes.length} (${timeline()})`).toBeGreaterThan(20);

    // Every subscriber: every acknowledged publication once, in one order shared by all.
    const reference = stream(subscribers[0]!, room).map((f) => (f.type === "resync" ? `resync:${f.epoch}` : key(f as any)));
    for (const [i, s] of subscribers.entries()) {
      const frames = stream(s, room);
      checkStream(frames, who[i]!);
      const data = new Set(frames.filter((f) => f.type === "message").map((f) => f.data as string));
      const missing = acked.filter((o) => !data.has(o.data));
      const lost =
        `${who[i]} lacks ${missing.length} of ${acked.length} acked publications: ${missing.slice(0, 5).map(described).join(", ")}; ` +
        `it got ${summary(frames)}; ${timeline()}`;
      expect(missing.map((o) => o.data), lost).toEqual([]);
      const order = `${who[i]} got ${summary(frames)}, subscriber 0 got ${summary(stream(subscribers[0]!, room))}`;
      expect(frames.map((f) => (f.type === "resync" ? `resync:${f.epoch}` : key(f as any))), order).toEqual(reference);
      // Redis came back empty: each subscriber was told, with the new epoch, before its messages.
      expect(frames.filter((f) => f.type === "resync").length, `${who[i]} was never told resync: ${summary(frames)}`).toBeGreaterThanOrEqual(1);
    }
    const epochs = new Set(subscribers[0]!.messages.get(room)!.map((m) => m.epoch));
    expect(epochs.size, `subscriber 0's epochs: ${summary(stream(subscribers[0]!, room))}`).toBe(2);
    console.log(
      `outage: ${acked.length} acked, ${refused.length} refused (max ${Math.max(...refused.map((o) => o.latencyMs))} ms), ` +
        `${subscribers.length} subscribers each got ${subscribers[0]!.messages.get(room)!.length} messages`,
    );
    await closeAll([...subscribers, ...publishers]);
  }, 40_000);
});

describe("Redis restarted empty", () => {
  test("subscribers get resync, the epoch changes, and live delivery continues", async () => {
    const room = topic("empty");
    const subscribers = await Promise.all(nodes.map((server, n) => connect(server, ["alice", "bob", "carol"][n]!)));
    const acks = await Promise.all(subscribers.map((s) => s.subscribe(room)));
    for (let i = 0; i < 3; i++) expect((await apiPublish(nodes[i]!, { topic: room, data: `old-${i}` })).status).toBe(202);
    await Promise.all(subscribers.map((s) => s.waitMessages(room, 3)));
    const oldEpoch = acks[0]!.epoch as string;

    await cluster.redis.restart();
    const resyncs = await Promise.all(subscribers.map((s) => s.next((f) => f.type === "resync" && f.topic === room, 5000, "resync")));
    const newEpoch = resyncs[0]!.epoch as string;
    expect(newEpoch).not.toBe(oldEpoch);
    for (const r of resyncs) expect(r).toEqual({ type: "resync", topic: room, seq: 0, epoch: newEpoch });

    await waitReady(5000);
    const published = [];
    for (let i = 0; i < 3; i++) published.push((await apiPublish(nodes[(i + 1) % 3]!, { topic: room, data: `new-${i}` })).body);
    expect(published.map((p) => [p.seq, p.epoch])).toEqual([[1, newEpoch], [2, newEpoch], [3, newEpoch]]);
    for (const s of subscribers) {
      const got = await s.waitMessages(room, 6, 3000);
      expect(got.map((m) => `${m.data}@${m.seq}`)).toEqual(["old-0@1", "old-1@2", "old-2@3", "new-0@1", "new-1@2", "new-2@3"]);
      expect(got.slice(3).every((m) => m.epoch === newEpoch)).toBe(true);
    }
  }, 30_000);
});

describe("a process's link to Redis blips while history is intact", () => {
  test("subscribers get every publication once, in order, repaired from history with no resync", async () => {
    const room = topic("blip");
    const subscribers: TestClient[] = [];
    for (const [n, server] of nodes.entries()) {
      for (let i = 0; i < 2; i++) subscribers.push(await connect(server, ["alice", "bob", "carol"][(n + i) % 3]!));
    }
    for (const s of subscribers) await s.subscribe(room);
    const acked: number[] = [];
    let running = true;
    const publishing = (async () => {
      for (let i = 0; running && i < 1000; i++) {
        const reply = await apiPublish(nodes[i % 3]!, { topic: room, data: i });
        if (reply.status === 202) acked.push(reply.body.seq);
        await Bun.sleep(5);
      }
    })();
    await Bun.sleep(400);
    // Every process's subscriber connection drops at once; Redis and its history stay.
    expect(await cluster.redis.command("CLIENT", "KILL", "TYPE", "pubsub")).toMatch(/^:[1-9]/);
    await Bun.sleep(800);
    running = false;
    await publishing;
    expect(acked.length).toBeGreaterThan(50);
    const expected = Array.from({ length: acked.length }, (_, i) => i + 1);
    expect([...acked].sort((a, b) => a - b)).toEqual(expected);
    for (const s of subscribers) {
      const got = await s.waitMessages(room, acked.length, 5000);
      await Bun.sleep(50);
      expect(got.map((m) => m.seq)).toEqual(expected);
      expect(s.ofType("resync")).toEqual([]);
    }
    // Each process noticed the lost link and re-read history (visible to operators in /metrics).
    const repairs: string[] = [];
    for (const server of nodes) {
      const metrics = await scrape(server);
      expect(metrics.value("switchboard_broker_reconnects_total")).toBeGreaterThanOrEqual(1);
      repairs.push(metrics.text.split("\n").filter((l) => l.startsWith("switchboard_gap_repairs_total")).join(" "));
    }
    console.log(`blip: ${acked.length} publications; gap repairs per process: ${repairs.join(" | ") || "none"}`);
  }, 30_000);
});
