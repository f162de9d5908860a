/**
 * Floods. A socket sending as fast as it can is refused frame by frame
 * (`rate_limited`, not acted on) and closed with 4008 two seconds into the run of refusals, while
 * the others' latency stays within a stated bound; WebSocket pings and pongs take tokens from the
 * same bucket, so a ping flood is closed the same way. Inbound work per socket is bounded twice:
 * the token bucket runs *before* a frame is queued (refused frames cost one error reply and
 * nothing else), and a socket with 32 frames queued is paused (`ws.pause()`) until its queue
 * drains, so TCP pushes back on a client that pipelines faster than its frames are handled.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Op, RawPeer, encodeFrame } from "../support/raw-ws.ts";
import { TestClient, closeAll } from "../support/client.ts";
import { session, startServer, type TestServer } from "../support/server.ts";
import { startRedis, type TestRedis } from "../support/redis.ts";
import { startLatencyProxy, type LatencyProxy } from "../support/latency-proxy.ts";
import { metric, rssMb } from "../support/metrics.ts";

const RATE = 50; // the defaults
const BURST = 100;
/** Bound on the bystanders' publish → delivery p99 while a paced attack runs. */
const P99_MS = 100;
/**
 * Bound on a bystander's p99 during the 2 s that a socket floods at full speed, before 4008:
 * measured 0.24–0.64 s on 2 shared cores, where the server, the flooder and the bystander process
 * compete for CPU (every refused frame still costs the server a read and an error reply).
 */
const FLOOD_P99_MS = 1000;
/**
 * Frames of 16 KB a pipelining socket may have taken ahead of their answers, of the 3,000 it sends:
 * 460–774 with the pause (the kernels' buffers, independent of how many are sent), all 3,000 without.
 */
const PIPELINE_AHEAD_MAX = 1500;
const BYSTANDER = new URL("./bystander.ts", import.meta.url).pathname;

let limited: TestServer; // default rate limit
let unlimited: TestServer; // rate limit out of the way, to reach the pause; on Redis (see below)
let redis: TestRedis;
let far: LatencyProxy; // `unlimited`'s link to Redis
const peers = new Set<RawPeer>();
const clients = new Set<TestClient>();

beforeAll(async () => {
  redis = await startRedis();
  far = await startLatencyProxy({ upstream: redis.port, delayMs: 5 });
  [limited, unlimited] = await Promise.all([startServer({}), startServer({ REDIS_URL: far.url("redis"), REDIS_COMMAND_TIMEOUT_MS: "5000", RATE_LIMIT_PER_S: "1000000", RATE_LIMIT_BURST: "1000000" })]);
  for (const s of [limited, unlimited]) for (const user of ["alice", "bob", "carol"]) await session(s, user);
}, 30_000);

afterAll(async () => {
  for (const p of peers) p.destroy();
  await closeAll(clients);
  limited?.kill();
  unlimited?.kill();
  await far?.close();
  await redis?.stop();
});

async function connect(server: TestServer, user: string): Promise<TestClient> {
  const c = await TestClient.connect(server.wsUrl, { cookie: (await session(server, user)).cookie });
  clients.add(c);
  return c;
}

async function attacker(server: TestServer): Promise<RawPeer> {
  const peer = await RawPeer.open(server.wsUrl, { Cookie: (await session(server, "bob")).cookie });
  peers.add(peer);
  await peer.waitFrame((f) => f.opcode === Op.text && f.payload.includes('"welcome"'), 3000, "welcome");
  return peer;
}

/** Starts test/hostile/bystander.ts (its own process) and resolves once it is measuring. */
async function spawnBystander(server: TestServer, durationMs: number) {
  const cookie = (await session(server, "carol")).cookie;
  const proc = Bun.spawn(["bun", BYSTANDER, server.wsUrl, cookie, String(durationMs)], { stdout: "pipe", stderr: "pipe" });
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let out = "";
  const deadline = Date.now() + 10_000;
  while (!out.includes('{"ready":true}') && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    out += decoder.decode(value, { stream: true });
  }
  if (!out.includes('{"ready":true}')) throw new Error(`bystander did not start: ${out} ${await new Response(proc.stderr).text()}`);
  return {
    async result(): Promise<{ sent: number; received: number; p50: number; p99: number; max: number; close: number | null }> {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        out += decoder.decode(value, { stream: true });
      }
      await proc.exited;
      return JSON.parse(out.trim().split("\n").at(-1)!);
    },
  };
}

/**
 * Sends `frame` as fast as the socket takes it until the server closes (at most 10 s); returns how
 * many went. It keeps ~256 KB in flight and yields to the event loop after each 1,000 frames (more
 * than the server handles in a millisecond), so that this process also reads what the server
 * answers: while the kernel takes every write, a loop without that cap wrote for seconds and saw
 * the close only once it stopped sending.
 */
async function floodUntilClosed(peer: RawPeer, frame: Buffer): Promise<number> {
  const started = Date.now();
  let sent = 0;
  while (!peer.ended && peer.closeFrame === null && Date.now() - started < 10_000) {
    for (let turn = 0; turn < 1000 && peer.unsent < 256 * 1024 && sent < 2_000_000; turn++) {
      peer.send(frame);
      sent++;
    }
    await Bun.sleep(1);
  }
  return sent;
}

/** Alice publishes every 20 ms, carol receives; returns the delivery latencies once stopped. */
function chatter(alice: TestClient, carol: TestClient, topic: string) {
  const latencies: number[] = [];
  let stop = false;
  const done = (async () => {
    for (let n = 0; !stop && n < 1000; n++) {
      const sent = performance.now();
      await alice.publish(topic, { n });
      await carol.waitMessages(topic, n + 1, 5000);
      latencies.push(performance.now() - sent);
      await Bun.sleep(20);
    }
  })();
  return {
    async stop() {
      stop = true;
      await done;
      latencies.sort((a, b) => a - b);
      return { n: latencies.length, p50: latencies[Math.floor(latencies.length / 2)]!, p99: latencies[Math.floor(latencies.length * 0.99)]! };
    },
  };
}

describe("a client flooding as fast as it can", () => {
  test("is refused beyond its bucket and closed (4008) about 2 s into the refusals; a bystander process's p99 stays under the bound", async () => {
    const carol = await connect(limited, "carol");
    await carol.subscribe("room:flood"); // counts what the flood got published
    const rssBefore = await rssMb(limited);
    const bystander = await spawnBystander(limited, 4000);

    const bob = await attacker(limited);
    bob.keep = 2000; // enough to see the burst's acks and the first refusals; the rest is counted
    // Encoded (and masked) once: the client must not be the bottleneck.
    const frame = encodeFrame({ opcode: Op.text, payload: JSON.stringify({ type: "publish", topic: "room:flood", data: "x".repeat(200) }) });
    const started = Date.now();
    const sent = await floodUntilClosed(bob, frame);
    const closed = await bob.closed(3000);
    const stats = await bystander.result();

    // 4008 — or 4009 when the flooder does not even read its refusals (they pile up past
    // BACKPRESSURE_LIMIT_BYTES first). Either way it is cut off within the 2 s rule.
    expect([4008, 4009]).toContain(closed.code!);
    // The first refusal comes within milliseconds (the burst goes at once), the close 2 s later
    // by the server's clock; it reaches the client behind the refusals already on the wire (seen
    // at 2.02 s on a quiet machine, with 2 cores shared by server, flooder and bystander). The
    // exact 2 s rule is test/limits.test.ts's; here what matters is that the flooder is cut off
    // and nobody else is.
    const closedAfterMs = bob.closeFrame!.at - started;
    expect(closedAfterMs).toBeLessThan(5_000);
    if (closed.code === 4008) expect(closedAfterMs).toBeGreaterThanOrEqual(1900);
    // A peer that does not answer the close is cut shortly after (2 s grace).
    await bob.until(() => bob.ended, 4000, "the TCP end");
    const kept = bob.json();
    const acked = kept.filter((f) => f.type === "ack").length;
    expect(kept.filter((f) => f.type === "error").every((f) => f.code === "rate_limited")).toBe(true);
    const refused = (bob.received.get(Op.text) ?? 0) - acked;
    // Only what the bucket allowed was acted on: the burst plus the refill over the run.
    await Bun.sleep(100);
    const published = (carol.messages.get("room:flood") ?? []).length;
    const allowance = BURST + RATE * (closedAfterMs / 1000) + 5;
    console.log(`flood: ${sent} frames sent, closed ${closed.code} after ${closedAfterMs} ms, ${refused} refused, ${published} published (allowance ${allowance.toFixed(0)}); bystander process: ${JSON.stringify(stats)}`);
    expect(sent).toBeGreaterThan(allowance * 10);
    expect(refused).toBeGreaterThan(allowance);
    expect(published).toBeLessThanOrEqual(allowance);

    expect(stats.close).toBeNull();
    expect(stats.received).toBe(stats.sent);
    expect(stats.sent).toBeGreaterThan(100);
    expect(stats.p99).toBeLessThan(FLOOD_P99_MS);
    expect(carol.close).toBeNull();
    expect((await rssMb(limited)) - rssBefore).toBeLessThan(64);
    const closes = await metric(limited, "switchboard_closes_sent_total", { code: String(closed.code) });
    expect(closes).toBeGreaterThanOrEqual(1);
  }, 30_000);

  test("frames nested deeper than 32 levels are refused before parsing: two sockets of 20,000-deep frames at the rate limit do not slow anyone", async () => {
    const alice = await connect(limited, "alice");
    const carol = await connect(limited, "carol");
    await carol.subscribe("room:deep-chat");
    const chat = chatter(alice, carol, "room:deep-chat");
    const deep = encodeFrame({ opcode: Op.text, payload: `{"type":"publish","topic":"room:deep","data":${"[".repeat(20_000)}${"]".repeat(20_000)}}` });
    const attackers = [await attacker(limited), await attacker(limited)];
    const started = Date.now();
    // 5 frames per 100 ms each = 50/s, the default rate: never refused, every one must be parsed.
    while (Date.now() - started < 2000) {
      for (const a of attackers) for (let i = 0; i < 5; i++) a.send(deep);
      await Bun.sleep(100);
    }
    const stats = await chat.stop();
    for (const a of attackers) {
      expect(a.closeFrame).toBeNull();
      const errors = a.json().filter((f) => f.type === "error");
      expect(errors.length).toBeGreaterThan(50);
      expect(errors.every((f) => f.code === "bad_request" && f.message === "frame nests deeper than 32 levels")).toBe(true);
    }
    console.log(`deep frames: bystanders ${stats.n} messages, p50 ${stats.p50.toFixed(1)} ms, p99 ${stats.p99.toFixed(1)} ms`);
    expect(stats.p99).toBeLessThan(P99_MS);
    // Depth within the limit is fine.
    const ok = await alice.request({ type: "publish", topic: "room:deep", data: JSON.parse("[".repeat(30) + "]".repeat(30)) });
    expect(ok.type).toBe("ack");
  }, 20_000);
});

describe("WebSocket control frames take tokens from the same bucket as text frames (SPEC §8)", () => {
  // Bun answers a ping with its pong natively, before the handler runs: before this rule a socket
  // had 722,000 pings answered in 4 s, none counted. A refused ping or pong gets no `error` frame
  // (it has no ref to echo); it counts towards the 2 s rule like a refused text frame.
  for (const [name, opcode] of [
    ["pings", Op.ping],
    ["unsolicited pongs", Op.pong],
  ] as const) {
    test(`a client flooding ${name} is closed (4008) about 2 s into the refusals; a bystander process keeps its latency`, async () => {
      const bystander = await spawnBystander(limited, 4000);
      const bob = await attacker(limited);
      bob.keep = 100; // the pongs are counted, not kept
      const started = Date.now();
      const sent = await floodUntilClosed(bob, encodeFrame({ opcode, payload: "are you there" }));
      const floodMs = Date.now() - started;
      await bob.closed(3000).catch(() => {}); // the close is asserted below, once the numbers are printed
      const stats = await bystander.result();
      const closedAfterMs = (bob.closeFrame?.at ?? NaN) - started;
      console.log(`${name} flood: ${sent} sent in ${floodMs} ms, ${bob.received.get(Op.pong) ?? 0} pongs back, closed ${bob.closeFrame?.code ?? "never"} after ${closedAfterMs} ms; bystander process: ${JSON.stringify(stats)}`);
      expect(bob.closeFrame?.code).toBe(4008);
      expect(closedAfterMs).toBeGreaterThanOrEqual(1900);
      expect(closedAfterMs).toBeLessThan(5_000);
      expect(sent).toBeGreaterThan((BURST + RATE * 2) * 10);
      expect(stats.close).toBeNull();
      expect(stats.received).toBe(stats.sent);
      expect(stats.sent).toBeGreaterThan(100);
      expect(stats.p99).toBeLessThan(FLOOD_P99_MS);
    }, 30_000);
  }

  test("a client pinging once a second (a library's keep-alive) for 5 s is never refused: every ping gets its pong, the socket stays open", async () => {
    const peer = await attacker(limited);
    for (let i = 0; i < 5; i++) {
      peer.sendFrame({ opcode: Op.ping, payload: `keep-alive ${i}` });
      await peer.waitFrame((f) => f.opcode === Op.pong && f.payload.toString() === `keep-alive ${i}`, 3000, `pong ${i}`);
      await Bun.sleep(1000);
    }
    peer.sendJson({ type: "ping", ref: 7 });
    await peer.waitJson((f) => f.type === "pong" && f.ref === 7, 3000, "the text pong");
    expect(peer.json().filter((f) => f.type === "error")).toEqual([]);
    expect(peer.closeFrame).toBeNull();
    expect(peer.ended).toBe(false);
  }, 15_000);
});

describe("inbound work per socket is bounded even without the rate limit: pause at 32 queued frames", () => {
  // On Redis a 10 ms round trip away, where each publish waits for a round trip, so frames really queue
  // up while the server itself is mostly idle and could read the whole stream at once. (With the
  // embedded broker a publish settles in a microtask and the queue drains between two reads.)
  test("a client pipelining 48 MB of publishes is read only as fast as they are handled: the frames read ahead of their answers stay bounded, every frame is answered in order, a bystander process is not slowed", async () => {
    const peer = await attacker(unlimited);
    const base = peer.received.get(Op.text) ?? 0;
    const rssBefore = await rssMb(unlimited);
    const bystander = await spawnBystander(unlimited, 3000);
    const N = 3000;
    const data = "y".repeat(16 * 1024);
    const frame = (i: number) => encodeFrame({ opcode: Op.text, payload: JSON.stringify({ type: "publish", topic: "room:pipe", ref: i, data }) });
    const frameBytes = frame(N).length; // every ref below N has at most as many digits
    for (let i = 0; i < N; i++) peer.send(frame(i));
    // Frames the client's kernel took (on the wire, in the two sockets' buffers, or read by the
    // server) that have no answer yet. Without the pause the server reads the stream as fast as it
    // arrives: this ran to all 3,000. With it: the 32 queued, the 64 in flight, and what the two
    // kernels buffer (the client's send buffer grows to 4 MB here, the server's receive buffer
    // as far as it grew before the first pause).
    let maxAhead = 0;
    let rssPeak = 0;
    let nextRss = 0;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && (peer.received.get(Op.text) ?? 0) < base + N && !peer.ended) {
      const taken = Math.floor((N * frameBytes - peer.unsent) / frameBytes);
      maxAhead = Math.max(maxAhead, taken - ((peer.received.get(Op.text) ?? 0) - base));
      if (Date.now() >= nextRss) {
        rssPeak = Math.max(rssPeak, await rssMb(unlimited));
        nextRss = Date.now() + 200;
      }
      await Bun.sleep(5);
    }
    const stats = await bystander.result();
    console.log(`pipeline: ${N} × 16 KB on Redis (10 ms round trips); at most ${maxAhead} frames taken ahead of their answers; server RSS ${rssBefore.toFixed(0)} → peak ${rssPeak.toFixed(0)} MB; bystander process: ${JSON.stringify(stats)}`);
    // The proxy runs in this busy test process: a loaded run once took the first publish past the
    // default 500 ms deadline (`unavailable`, as the SPEC allows); this case is about reading.
    expect(peer.json().filter((f) => f.type === "error")).toEqual([]);
    const acks = peer.json().filter((f) => f.type === "ack");
    expect(acks.map((f) => f.ref)).toEqual([...Array(N).keys()]);
    expect(peer.closeFrame).toBeNull();
    expect(maxAhead).toBeLessThan(PIPELINE_AHEAD_MAX);
    expect(rssPeak - rssBefore).toBeLessThan(100);
    expect(stats.close).toBeNull();
    expect(stats.received).toBe(stats.sent);
    // 145–220 ms alone (its publishes queue behind the pipeline's on the one Redis connection);
    // the bound is the flood's, for the same 2 shared cores.
    expect(stats.p99).toBeLessThan(FLOOD_P99_MS);
  }, 30_000);

  test("and the acks came in order: the queue handles one socket's frames strictly in arrival order", async () => {
    const peer = await attacker(unlimited);
    for (let i = 0; i < 200; i++) peer.sendText(JSON.stringify({ type: "publish", topic: "room:order", ref: i, data: i }));
    await peer.until(() => peer.json().filter((f) => f.type === "ack").length >= 200, 10_000, "200 acks");
    const acks = peer.json().filter((f) => f.type === "ack");
    expect(acks.map((f) => f.ref)).toEqual([...Array(200).keys()]);
    expect(acks.map((f) => f.seq)).toEqual(acks.map((_, i) => acks[0]!.seq + i));
  }, 15_000);
});
