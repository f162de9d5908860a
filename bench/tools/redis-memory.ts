/**
 * Redis memory a deployment needs (README "Operations" capacity table): a real redis-server and a
 * real server process, `INFO memory` used_memory before and after each load, and `MEMORY USAGE`
 * of one topic's keys. Run: bun bench/tools/redis-memory.ts
 */
import Redis from "ioredis";
import { startRedis } from "../../test/support/redis.ts";
import { apiPublish, session, startServer } from "../../test/support/server.ts";
import { TestClient } from "../../test/support/client.ts";

const redisServer = await startRedis();
const server = await startServer({
  REDIS_URL: redisServer.url,
  RATE_LIMIT_PER_S: "100000",
  RATE_LIMIT_BURST: "100000",
  MAX_SUBSCRIPTIONS_PER_SOCKET: "100000",
  MAX_SUBSCRIPTIONS_PER_USER: "100000",
});
const redis = new Redis(redisServer.url);

async function used(): Promise<number> {
  await Bun.sleep(300);
  const info = await redis.info("memory");
  return Number(/used_memory:(\d+)/.exec(info)![1]);
}

async function inBatches(n: number, each: (i: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < n; i += 100) await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, j) => each(i + j)));
}

function row(what: string, bytes: number, n: number): void {
  console.log(`${what.padEnd(58)} ${(bytes / n).toFixed(0).padStart(7)} B each  (${n} measured, ${(bytes / 1e6).toFixed(2)} MB)`);
}

try {
  const N = 2000;
  let before = await used();
  await inBatches(N, (i) => apiPublish(server, { topic: `room:active-${i}`, data: { text: "x".repeat(100) } }));
  row("active topic (1 message of 100 B, no subscriber)", (await used()) - before, N);
  const usage = async (key: string) => Number(await redis.call("MEMORY", "USAGE", key, "SAMPLES", "0"));
  console.log(`  MEMORY USAGE: meta ${await usage("sb:{room:active-0}:meta")} B, log ${await usage("sb:{room:active-0}:log")} B`);

  before = await used();
  for (let i = 0; i < 100; i++) await apiPublish(server, { topic: "room:full", data: { text: "x".repeat(1000) } });
  row("message of 1 KB in history (100 kept)", (await used()) - before, 100);

  before = await used();
  await inBatches(N, (i) => apiPublish(server, { topic: "room:keyed", data: i, key: `order-${i}-${"k".repeat(24)}` }));
  const keyed = (await used()) - before;
  row("idempotency key (36 chars; 100 small messages kept too)", keyed, N);
  console.log(`  MEMORY USAGE of one key: ${await usage(`sb:{room:keyed}:key:order-0-${"k".repeat(24)}`)} B`);

  const { cookie } = await session(server, "alice");
  const sockets = await Promise.all(Array.from({ length: 4 }, () => TestClient.connect(server.wsUrl, { cookie })));
  before = await used();
  for (const [s, c] of sockets.entries()) await inBatches(500, (i) => c.subscribe(`room:sub-${s}-${i}`));
  row("subscription, each to its own topic (presence + channel)", (await used()) - before, N);
  before = await used();
  for (const [s, c] of sockets.entries()) await inBatches(500, (i) => c.subscribe(`room:active-${i + (s % 2) * 500}`));
  row("subscription to an active topic, two sockets of a user each", (await used()) - before, N);
  console.log(`  MEMORY USAGE presence: conns ${await usage("sb:{p:room:sub-0-0}:conns")} B, users ${await usage("sb:{p:room:sub-0-0}:users")} B`);

  before = await used();
  await inBatches(N, (i) => redis.set(`sb:revoked:probe-${i}`, "1", "EX", 600));
  row("revocation (plain SET EX, for comparison)", (await used()) - before, N);
  for (const c of sockets) c.ws.close();
} finally {
  redis.disconnect();
  server.kill();
  await redisServer.stop();
}
