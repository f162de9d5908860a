/**
 * `bun bench/ephemeral.ts [--count 20000] [--topics 100] [--window 256] [--repeat 3] [--ws-count 5000] [--subs 20]`
 *
 * SPEC §5 `delivery: "ephemeral"` against `ordered` (issue 13).
 *
 * 1. At the broker: a real redis-server,
 * one RedisBroker publishing and another subscribed to every topic (so each PUBLISH has a receiver).
 * - ordered: RedisBroker.publish — the Lua ordering point (seq, stream append, TTLs, PUBLISH);
 * - ephemeral: RedisBroker.broadcast — one plain PUBLISH of the frame, what an ephemeral topic uses.
 * Both pipelined with `--window` in flight over `--topics` topics. Reports publications/s at the
 * publisher, deliveries seen by the subscriber, and Redis CPU per publication (INFO cpu,
 * used_cpu_user + used_cpu_sys of the server, delta over the run). Runs interleaved, medians.
 * 2. Through the WebSocket: two Switchboard processes on that Redis, `--subs` subscribers of one
 *    topic spread over both, one publisher socket on the first with `--window` publishes un-acked;
 *    `room:*` (ordered) against `typing:*` (NAMESPACES: ephemeral). Reports acked publications/s,
 *    deliveries, and Redis CPU per publication.
 * Everything shares this machine's cores; the Redis CPU figure is the one that moves least.
 */
import { parseArgs } from "node:util";
import { RedisBroker } from "../src/broker/redis.ts";
import type { BrokerEvents } from "../src/broker/broker.ts";
import { redisInfo } from "./lib/cluster.ts";
import { startRedis, type TestRedis } from "../test/support/redis.ts";
import { startServer, loginSession, type TestServer } from "../test/support/server.ts";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "20000" },
    topics: { type: "string", default: "100" },
    window: { type: "string", default: "256" },
    repeat: { type: "string", default: "3" },
    "ws-count": { type: "string", default: "5000" },
    subs: { type: "string", default: "20" },
  },
});
const COUNT = Number(values.count);
const TOPICS = Number(values.topics);
const WINDOW = Number(values.window);
const REPEAT = Number(values.repeat);
const WS_COUNT = Number(values["ws-count"]);
const SUBS = Number(values.subs);

const noEvents: BrokerEvents = { onPublication() {}, onEphemeral() {}, onControl() {}, onReconnect() {} };

async function redisCpuS(redis: TestRedis): Promise<number> {
  const res = await redisInfo(redis.port, "cpu"); // raw: the test helper returns only a reply's first line
  const user = Number(/used_cpu_user:([\d.]+)/.exec(res)?.[1]);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(res)?.[1]);
  return user + sys;
}

interface Run {
  perS: number;
  redisUsPerPub: number;
  delivered: number;
  /** Through the WebSocket: CPU of both Switchboard processes per publication (µs). */
  serverUsPerPub?: number;
}

/** utime + stime of a process, in seconds (Linux /proc, 100 ticks per second). */
async function processCpuS(pid: number): Promise<number> {
  const stat = await Bun.file(`/proc/${pid}/stat`).text();
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
const serversCpuS = async (servers: TestServer[]) => (await Promise.all(servers.map((s) => processCpuS(s.proc.pid)))).reduce((a, b) => a + b, 0);

async function run(redis: TestRedis, mode: "ordered" | "ephemeral", round: number): Promise<Run> {
  let delivered = 0;
  const publisher = new RedisBroker({ url: redis.url, instanceId: `bench-pub-${mode}-${round}`, historySize: 100, historyTtlS: 300 });
  const subscriber = new RedisBroker({ url: redis.url, instanceId: `bench-sub-${mode}-${round}`, historySize: 100, historyTtlS: 300 });
  await publisher.start(noEvents);
  await subscriber.start({ ...noEvents, onPublication: () => void delivered++, onEphemeral: () => void delivered++ });
  const topics = Array.from({ length: TOPICS }, (_, i) => `${mode === "ordered" ? "room" : "typing"}:bench-${round}-${i}`);
  for (const topic of topics) await subscriber.subscribe(topic);
  const frame = (topic: string, i: number) => JSON.stringify({ type: "message", topic, from: "bench", data: { x: i, y: i * 2 }, ts: Date.now() });

  const cpuBefore = await redisCpuS(redis);
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < COUNT) {
      const i = next++;
      const topic = topics[i % TOPICS]!;
      if (mode === "ordered") await publisher.publish(topic, { from: "bench", data: { x: i, y: i * 2 }, ts: Date.now() });
      else await publisher.broadcast(topic, frame(topic, i));
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, worker));
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = await redisCpuS(redis);
  const deadline = Date.now() + 5000;
  while (delivered < COUNT && Date.now() < deadline) await Bun.sleep(10);
  await Promise.all([publisher.close(), subscriber.close()]);
  return { perS: COUNT / seconds, redisUsPerPub: ((cpuAfter - cpuBefore) * 1e6) / COUNT, delivered };
}

/** Opens a socket with the cookie and resolves once `welcome` (and, given a topic, its subscribe ack) arrived. */
function openSocket(server: TestServer, cookie: string, onFrame: (text: string) => void, topic?: string): Promise<WebSocket> {
  const WS = WebSocket as unknown as new (url: string, o: { headers: Record<string, string> }) => WebSocket;
  return new Promise((resolve, reject) => {
    const ws = new WS(server.wsUrl, { headers: { Cookie: cookie } });
    const timer = setTimeout(() => reject(new Error("socket setup timed out")), 10_000);
    ws.onmessage = (ev) => {
      const text = ev.data as string;
      if (text.startsWith('{"type":"welcome"')) {
        if (topic === undefined) {
          clearTimeout(timer);
          resolve(ws);
        } else ws.send(JSON.stringify({ type: "subscribe", topic, ref: 0 }));
      } else if (topic !== undefined && text.startsWith('{"type":"ack","ref":0,')) {
        clearTimeout(timer);
        resolve(ws);
      } else onFrame(text);
    };
    ws.onerror = () => reject(new Error("socket error"));
  });
}

async function runWs(redis: TestRedis, servers: TestServer[], cookie: string, mode: "ordered" | "ephemeral", round: number): Promise<Run> {
  const topic = `${mode === "ordered" ? "room" : "typing"}:ws-${round}`;
  let delivered = 0;
  const sockets: WebSocket[] = [];
  for (let i = 0; i < SUBS; i++) {
    sockets.push(await openSocket(servers[i % servers.length]!, cookie, (t) => t.startsWith('{"type":"message"') && delivered++, topic));
  }
  let acked = 0;
  let wake: (() => void) | null = null;
  const publisher = await openSocket(servers[0]!, cookie, (t) => {
    if (t.startsWith('{"type":"ack"')) {
      acked++;
      wake?.();
    }
  });
  sockets.push(publisher);
  const cpuBefore = await redisCpuS(redis);
  const serverBefore = await serversCpuS(servers);
  const started = performance.now();
  for (let i = 0; i < WS_COUNT; i++) {
    while (i - acked >= WINDOW) await new Promise<void>((r) => (wake = r));
    publisher.send(JSON.stringify({ type: "publish", topic, ref: i + 1, data: { x: i, y: i * 2 } }));
  }
  while (acked < WS_COUNT) await new Promise<void>((r) => (wake = r));
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = await redisCpuS(redis);
  const deadline = Date.now() + 10_000;
  while (delivered < WS_COUNT * SUBS && Date.now() < deadline) await Bun.sleep(10);
  const serverAfter = await serversCpuS(servers);
  for (const ws of sockets) ws.close();
  return { perS: WS_COUNT / seconds, redisUsPerPub: ((cpuAfter - cpuBefore) * 1e6) / WS_COUNT, delivered, serverUsPerPub: ((serverAfter - serverBefore) * 1e6) / WS_COUNT };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const redis = await startRedis();
let servers: TestServer[] = [];
try {
  const results: Record<"ordered" | "ephemeral", Run[]> = { ordered: [], ephemeral: [] };
  for (let round = 0; round < REPEAT; round++) {
    for (const mode of ["ordered", "ephemeral"] as const) results[mode].push(await run(redis, mode, round));
  }
  console.log(`${COUNT} publications over ${TOPICS} topics, ${WINDOW} in flight, ${REPEAT} repeats (medians):`);
  console.log("| delivery | publications/s | Redis CPU µs / publication | delivered (last run) |");
  console.log("|---|---|---|---|");
  for (const mode of ["ordered", "ephemeral"] as const) {
    const rs = results[mode];
    console.log(`| ${mode} | ${Math.round(median(rs.map((r) => r.perS)))} | ${median(rs.map((r) => r.redisUsPerPub)).toFixed(2)} | ${rs.at(-1)!.delivered} / ${COUNT} |`);
  }
  console.log(JSON.stringify({ bench: "ephemeral", count: COUNT, topics: TOPICS, window: WINDOW, results }));

  const env = {
    REDIS_URL: redis.url,
    NAMESPACES: JSON.stringify({ typing: { subscribe: "any", publish: "any", delivery: "ephemeral" } }),
    RATE_LIMIT_PER_S: "1000000",
    RATE_LIMIT_BURST: "1000000",
    MAX_CONNECTIONS_PER_USER: "100000",
    MAX_CONNECTIONS_PER_IP: "100000",
    LOG_LEVEL: "error",
  };
  servers = await Promise.all([startServer({ ...env, INSTANCE_ID: "bench-ws-a" }), startServer({ ...env, INSTANCE_ID: "bench-ws-b" })]);
  const cookie = (await loginSession(servers[0]!, "alice")).cookie;
  const ws: Record<"ordered" | "ephemeral", Run[]> = { ordered: [], ephemeral: [] };
  for (let round = 0; round < REPEAT; round++) {
    for (const mode of ["ordered", "ephemeral"] as const) ws[mode].push(await runWs(redis, servers, cookie, mode, round));
  }
  console.log(`\nThrough the WebSocket: ${WS_COUNT} publications from one socket (${WINDOW} un-acked), ${SUBS} subscribers on 2 processes (medians):`);
  console.log("| delivery | acked publications/s | Redis CPU µs / publication | servers' CPU µs / publication | deliveries (last run) |");
  console.log("|---|---|---|---|---|");
  for (const mode of ["ordered", "ephemeral"] as const) {
    const rs = ws[mode];
    const server = median(rs.map((r) => r.serverUsPerPub ?? NaN)).toFixed(0);
    console.log(`| ${mode} | ${Math.round(median(rs.map((r) => r.perS)))} | ${median(rs.map((r) => r.redisUsPerPub)).toFixed(2)} | ${server} | ${rs.at(-1)!.delivered} / ${WS_COUNT * SUBS} |`);
  }
  console.log(JSON.stringify({ bench: "ephemeral-ws", count: WS_COUNT, subs: SUBS, window: WINDOW, results: ws }));
} finally {
  for (const server of servers) server.kill();
  await redis.stop();
}
