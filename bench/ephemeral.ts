/**
 * `bun bench/ephemeral.ts [--count 20000] [--topics 100] [--window 256] [--repeat 3]`
 *
 * SPEC §5 `delivery: "ephemeral"` against `ordered`, at the broker (issue 13): a real redis-server,
 * one RedisBroker publishing and another subscribed to every topic (so each PUBLISH has a receiver).
 * - ordered: RedisBroker.publish — the Lua ordering point (seq, stream append, TTLs, PUBLISH);
 * - ephemeral: RedisBroker.broadcast — one plain PUBLISH of the frame, what an ephemeral topic uses.
 * Both pipelined with `--window` in flight over `--topics` topics. Reports publications/s at the
 * publisher, deliveries seen by the subscriber, and Redis CPU per publication (INFO cpu,
 * used_cpu_user + used_cpu_sys of the server, delta over the run). Runs interleaved, medians.
 * Everything shares this machine's cores; the Redis CPU figure is the one that moves least.
 */
import { parseArgs } from "node:util";
import { RedisBroker } from "../src/broker/redis.ts";
import type { BrokerEvents } from "../src/broker/broker.ts";
import { startRedis, type TestRedis } from "../test/support/redis.ts";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "20000" },
    topics: { type: "string", default: "100" },
    window: { type: "string", default: "256" },
    repeat: { type: "string", default: "3" },
  },
});
const COUNT = Number(values.count);
const TOPICS = Number(values.topics);
const WINDOW = Number(values.window);
const REPEAT = Number(values.repeat);

const noEvents: BrokerEvents = { onPublication() {}, onEphemeral() {}, onControl() {}, onReconnect() {} };

async function redisCpuS(redis: TestRedis): Promise<number> {
  const res = await fetchInfo(redis);
  const user = Number(/used_cpu_user:([\d.]+)/.exec(res)?.[1]);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(res)?.[1]);
  return user + sys;
}

/** INFO cpu over a raw socket (the test helper returns only the first line of a reply). */
async function fetchInfo(redis: TestRedis): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    void Bun.connect({
      hostname: "127.0.0.1",
      port: redis.port,
      socket: {
        open(s) {
          s.write("INFO cpu\r\n");
        },
        data(s, chunk) {
          text += chunk.toString();
          if (text.includes("used_cpu_user_children")) {
            s.end();
            resolve(text);
          }
        },
        error(_, error) {
          reject(error);
        },
      },
    });
  });
}

interface Run {
  perS: number;
  redisUsPerPub: number;
  delivered: number;
}

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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const redis = await startRedis();
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
} finally {
  await redis.stop();
}
