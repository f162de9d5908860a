/** The stores suite on the embedded stores and on Redis (shared by every machine). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type Redis from "ioredis";
import { closeConnection, connectWithin, createConnection } from "../src/redis/connection.ts";
import { memoryStores } from "../src/stores/memory.ts";
import { redisStores } from "../src/stores/redis.ts";
import { RevocationReader } from "../src/stores/revocation-reads.ts";
import { hearChannel, startRedis, type TestRedis } from "./support/redis.ts";
import { describeStores } from "./suites/stores.suite.ts";

describeStores("memory", () => memoryStores());

let redis: TestRedis;
let client: Redis;
let reads: Redis;
beforeAll(async () => {
  redis = await startRedis();
  client = createConnection(redis.url, { name: "stores-test" });
  reads = createConnection(redis.url, { name: "stores-test-reads" }); // as the server opens it on one Redis
  await Promise.all([connectWithin(client, 2000), connectWithin(reads, 2000)]);
});
afterAll(async () => {
  await Promise.all([closeConnection(client), closeConnection(reads)]);
  await redis.stop();
});

const hear = (channel: string) => hearChannel(redis.url, channel);
describeStores("Redis", () => redisStores(client), { hear });
// As the server runs them: the revocation reads of one moment as one script call.
describeStores("Redis, revocation reads batched", () => redisStores(client, new RevocationReader(reads, 500)), { hear });

describe("versions before dea89a7, which know only sb:revoked:<sid>", () => {
  test("a session revoked under sb:revoked:<sid> (a string with TTL) stays revoked, with and without batched reads", async () => {
    const sid = `legacy-${Date.now().toString(36)}`;
    await client.set(`sb:revoked:${sid}`, "1", "EX", 60);
    expect(await redisStores(client).revocations.isRevoked(sid)).toBe(true);
    const batched = redisStores(client, new RevocationReader(reads, 500));
    expect(await Promise.all([batched.revocations.isRevoked(sid), batched.revocations.isRevoked(`${sid}-other`)])).toEqual([true, false]);
    // The handshake's question (session and user at once) reads the legacy key too.
    expect(await redisStores(client).credentialRevocations.revokedBy(sid, "legacy-user", 1_000)).toBe("session");
    expect(await Promise.all([batched.credentialRevocations.revokedBy(sid, "legacy-user", 1_000), batched.credentialRevocations.revokedBy(`${sid}-other`, "legacy-user", 1_000)])).toEqual(["session", null]);
  });
  test("a logout answered by this version is seen by an earlier version's read (EXISTS sb:revoked:<sid>), for the session's remaining life", async () => {
    const sid = `legacy-reader-${Date.now().toString(36)}`;
    expect(await client.exists(`sb:revoked:${sid}`)).toBe(0);
    await redisStores(client).revocations.revoke(sid, 90);
    expect(await client.exists(`sb:revoked:${sid}`)).toBe(1);
    const ttl = await client.ttl(`sb:revoked:${sid}`);
    expect(ttl).toBeGreaterThan(85);
    expect(ttl).toBeLessThanOrEqual(90);
  });
});

describe("user revocations on one Redis: the one key of every version (sb:{revocations}:users)", () => {
  test("whatever USER_REVOCATIONS_LEGACY says, a revoke is written there (a version before rev14 reads it) and one written there (as such a version writes it) is refused and listed", async () => {
    const nowS = Math.floor(Date.now() / 1000);
    for (const legacy of ["read", "write", "off"] as const) {
      const tag = `${legacy}-${Date.now().toString(36)}`;
      for (const stores of [redisStores(client, undefined, legacy), redisStores(client, new RevocationReader(reads, 500), legacy)]) {
        const [mine, theirs] = [`mine-${tag}`, `theirs-${tag}`];
        await stores.userRevocations.revokeUser(mine, nowS);
        expect(await client.zscore("sb:{revocations}:users", mine)).toBe(String(nowS));
        await client.zadd("sb:{revocations}:users", nowS, theirs);
        expect(await Promise.all([stores.userRevocations.isRevoked(theirs, nowS - 60), stores.userRevocations.isRevoked(`${theirs}-other`, nowS - 60)])).toEqual([true, false]);
        expect(await stores.credentialRevocations.revokedBy("one-redis-sid", theirs, nowS - 60)).toBe("user");
        expect((await stores.userRevocations.revokedSince(nowS - 5)).has(theirs)).toBe(true);
        await stores.close();
      }
    }
  });
});

describe("revocation reads in a storm", () => {
  test("a wave of checks leaves in batches of at most maxChecks, each answered in a turn of its own, every answer its own", async () => {
    const stores = redisStores(client, new RevocationReader(reads, 500, 4));
    const sids = Array.from({ length: 10 }, (_, i) => `wave-${Date.now().toString(36)}-${i}`);
    await Promise.all(sids.filter((_, i) => i % 3 === 0).map((sid) => stores.revocations.revoke(sid, 60)));
    // Turns of the event loop, counted by a chain of immediates while the checks are answered.
    let turn = 0;
    let counting = true;
    const tick = () => {
      turn++;
      if (counting) setImmediate(tick);
    };
    setImmediate(tick);
    const answeredIn: number[] = [];
    // One check alone first: its call is out when the wave is asked (an immediate after its flush),
    // and its reply must not let a second batch of the wave leave before the first is answered.
    const lone = stores.revocations.isRevoked(`${sids[0]}-lone`);
    const wave = await new Promise<Promise<boolean[]>>((resolve) =>
      setImmediate(() => resolve(Promise.all(sids.map((sid, i) => stores.revocations.isRevoked(sid).then((revoked) => ((answeredIn[i] = turn), revoked)))))),
    );
    const answers = await wave;
    counting = false;
    expect(await lone).toBe(false);
    expect(answers).toEqual(sids.map((_, i) => i % 3 === 0));
    // 10 checks, 4 a batch: three batches, oldest first, each answered in a later turn than the one before.
    const byTurn = new Map<number, number>();
    for (const t of answeredIn) byTurn.set(t, (byTurn.get(t) ?? 0) + 1);
    expect([...byTurn.values()]).toEqual([4, 4, 2]);
    expect(answeredIn).toEqual([...answeredIn].sort((a, b) => a - b));
  });

  test("the oldest waiting check's age: 0 with nothing queued, how long it has waited while it waits (a long turn, or batches behind one out), 0 again once all left", async () => {
    const reader = new RevocationReader(reads, 500, 4);
    const stores = redisStores(client, reader);
    const busy = (ms: number) => {
      const from = performance.now();
      while (performance.now() - from < ms); // this turn of the loop runs on
    };
    expect(stores.revocationWaitMs?.()).toBe(0);
    // One check: it leaves after this turn, however long the turn is.
    const lone = stores.revocations.isRevoked("wait-lone");
    busy(30);
    expect(reader.oldestWaitMs()).toBeGreaterThanOrEqual(30);
    expect(await lone).toBe(false);
    expect(reader.oldestWaitMs()).toBe(0);
    // A wave of 10 at 4 a batch: once the first batch is out, the other 6 wait for its replies.
    const wave = Array.from({ length: 10 }, (_, i) => stores.revocations.isRevoked(`wait-wave-${i}`));
    await new Promise((resolve) => setImmediate(resolve));
    busy(20);
    expect(reader.oldestWaitMs()).toBeGreaterThanOrEqual(20);
    expect(await Promise.all(wave)).toEqual(Array(10).fill(false));
    expect(reader.oldestWaitMs()).toBe(0);
  });

  test("a wave no larger than a batch is one call, as before", async () => {
    const stores = redisStores(client, new RevocationReader(reads, 500, 4));
    const before = Number((await reads.info("commandstats")).match(/cmdstat_evalsha:calls=(\d+)/)?.[1] ?? 0);
    expect(await Promise.all([0, 1, 2, 3].map((i) => stores.revocations.isRevoked(`small-${i}`)))).toEqual([false, false, false, false]);
    const after = Number((await reads.info("commandstats")).match(/cmdstat_evalsha:calls=(\d+)/)?.[1] ?? 0);
    expect(after - before).toBe(1);
  });
});
