/**
 * The watch that closes open sockets of users revoked by `/api/disconnect` with `revoke` when the
 * call itself was not heard here (pub/sub is at most once), on a real Redis: a revocation made while
 * this process could not read for longer than the watch's window is still acted on once it reads.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import Redis from "ioredis";
import { RevocationWatch } from "./revocation-watch.ts";
import { RedisUserRevocationStore } from "../stores/redis.ts";
import type { Socket } from "./connection-host.ts";
import { startRedis, type TestRedis } from "../../test/support/redis.ts";

let redis: TestRedis;
let client: Redis;
beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50, lazyConnect: true });
  await client.connect();
});
afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

test("after reads failed for longer than the window, the next pass reads from the last one that succeeded", async () => {
  const store = new RedisUserRevocationStore(client);
  const closed: number[] = [];
  const socket = { isOpen: true, issuedAt: 1140, close: (code: number) => closed.push(code) } as unknown as Socket;
  const watch = new RevocationWatch({ store, socketsOf: (user) => (user === "bob" ? [socket] : []), log: () => {}, windowS: 120 });
  expect(await watch.check(1000)).toBe(0);
  // Redis out of reach for this process from second 1000 to 1300 (beyond the 120 s window); bob is
  // revoked at 1150 meanwhile (here: once Redis is back, written with that second).
  await redis.kill();
  expect(await watch.check(1100)).toBe(0);
  expect(await watch.check(1200)).toBe(0);
  await redis.restart();
  for (let i = 0; i < 100 && client.status !== "ready"; i++) await Bun.sleep(50);
  await store.revokeUser("bob", 1150);
  expect(await watch.check(1300)).toBe(1);
  expect(closed).toEqual([4003]);
}, 30_000);
