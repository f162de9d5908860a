/**
 * SPEC §7 (a logged-out session is refused everywhere from the moment its logout answered; Redis
 * unreachable is `unavailable`, never "not revoked") on a real Redis Cluster with one primary hung
 * (SIGSTOP, resumed before the cluster fails it over): the revocation reads of one turn of the event
 * loop (one batch of src/stores/revocation-reads.ts) are answered check by check. A check whose own
 * reads are all on live primaries is answered, "revoked" included; one that needs a read from the
 * hung primary is refused with `unavailable`, once that read's deadline passed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Cluster } from "ioredis";
import { ErrorCode, SwitchboardError } from "../src/protocol/codes.ts";
import { closeConnection, connectWithin, createClusterConnection } from "../src/redis/connection.ts";
import { redisStores, storeKeys } from "../src/stores/redis.ts";
import { RevocationReader } from "../src/stores/revocation-reads.ts";
import type { RevokedBy, Stores } from "../src/stores/stores.ts";
import { startRedisCluster, type ClusterNode, type TestRedisCluster } from "./support/redis-cluster.ts";

/** REDIS_COMMAND_TIMEOUT_MS's default: the auth-reads connection's command timeout and the batch's deadline. */
const DEADLINE_MS = 500;

let cluster: TestRedisCluster;
let data: Cluster;
let reads: Cluster;
let stores: Stores;
beforeAll(async () => {
  cluster = await startRedisCluster();
  data = createClusterConnection(cluster.url, { name: "rr-cluster-data" });
  // As the server opens its auth-reads connection on a cluster (redis/services.ts).
  reads = createClusterConnection(cluster.url, { name: "rr-cluster-auth-reads", commandTimeoutMs: DEADLINE_MS, autoPipelining: true });
  await Promise.all([connectWithin(data, 5000), connectWithin(reads, 5000)]);
  stores = redisStores(data, new RevocationReader(reads, DEADLINE_MS));
}, 30_000);
afterAll(async () => {
  for (const node of cluster?.nodes ?? []) node.signal("SIGCONT");
  await Promise.all([data, reads].filter(Boolean).map(closeConnection));
  await cluster?.stop();
});

/** Which primary each key is on: one CLUSTER NODES per key (redis-cli), a few at a time. */
async function primariesOf(keys: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (let i = 0; i < keys.length; i += 16) {
    const chunk = keys.slice(i, i + 16);
    const ports = await Promise.all(chunk.map((key) => cluster.primaryOf(key)));
    chunk.forEach((key, j) => out.set(key, ports[j]!));
  }
  return out;
}

interface Asked {
  sid: string;
  user: string;
  /** What the check must answer, or `unavailable`. */
  expected: RevokedBy | "unavailable";
}

interface Settled extends Asked {
  answer: RevokedBy | "unavailable" | string;
  /** ms after the batch was asked. */
  afterMs: number;
}

/** Asks every check in one turn (one batch) and waits for all of them. */
async function askInOneTurn(asked: Asked[], iatS: number): Promise<Settled[]> {
  const start = performance.now();
  return Promise.all(
    asked.map((a) =>
      stores.credentialRevocations.revokedBy(a.sid, a.user, iatS).then(
        (answer): Settled => ({ ...a, answer, afterMs: performance.now() - start }),
        (error: unknown): Settled => ({
          ...a,
          answer: error instanceof SwitchboardError && error.code === ErrorCode.unavailable ? "unavailable" : String(error),
          afterMs: performance.now() - start,
        }),
      ),
    ),
  );
}

describe("a Redis Cluster with one primary hung: the revocation reads of one turn", () => {
  test("the checks whose reads are all on live primaries are answered (revoked sessions and users refused); only those that need the hung one are `unavailable`", async () => {
    // Every check reads the legacy users' key (USER_REVOCATIONS_LEGACY=read, the default): the primary hung is another one.
    const usersPort = await cluster.primaryOf(storeKeys.revokedUsers);
    const shardKeys = Array.from({ length: 16 }, (_, n) => `sb:revocations:{${n}}`);
    const shardOwners = await primariesOf(shardKeys);
    // Of the other primaries, the one that owns most shard keys.
    const owned = (port: number) => [...shardOwners.values()].filter((p) => p === port).length;
    const hungPort = [...new Set(shardOwners.values())].filter((port) => port !== usersPort).sort((a, b) => owned(b) - owned(a))[0];
    expect(hungPort).toBeDefined();
    const hung = cluster.nodes.find((n) => n.port === hungPort) as ClusterNode;

    // Session ids of each kind: both keys live; the shard's sorted set on the hung primary; only
    // the legacy key there.
    const tag = Math.random().toString(36).slice(2, 8);
    const sids = Array.from({ length: 400 }, (_, i) => `rr-${tag}-${i}`);
    const owners = await primariesOf(sids.map(storeKeys.revoked));
    const live: string[] = [];
    const hungSet: string[] = [];
    const hungLegacy: string[] = [];
    for (const sid of sids) {
      const setHung = shardOwners.get(storeKeys.revocations(sid)) === hungPort;
      const legacyHung = owners.get(storeKeys.revoked(sid)) === hungPort;
      if (setHung) hungSet.push(sid);
      else if (legacyHung) hungLegacy.push(sid);
      else live.push(sid);
    }
    expect(live.length).toBeGreaterThanOrEqual(80);
    expect(hungSet.length).toBeGreaterThanOrEqual(20);
    expect(hungLegacy.length).toBeGreaterThanOrEqual(20);

    // Users whose shard (`sb:revocations:{<n>}:users`) is on a live primary: only the sessions' reads need the hung one.
    const userOff = async (name: string) => {
      for (let i = 0; ; i++) if ((await cluster.primaryOf(storeKeys.userRevocations(`${name}-${i}`))) !== hungPort) return `${name}-${i}`;
    };
    const [liveUser, revokedUser] = [await userOff(`user-${tag}-a`), await userOff(`user-${tag}-revoked`)];

    // Revoked before the primary hangs: live sessions (their logout answered), one user, and
    // sessions whose reads need the hung primary (refused, never "not revoked").
    const nowS = Math.floor(Date.now() / 1000);
    const iatS = nowS - 60;
    const revokedSessions = live.slice(0, 10);
    const revokedUserSids = live.slice(10, 15);
    const revokedHung = [...hungSet.slice(0, 5), ...hungLegacy.slice(0, 5)];
    for (const sid of [...revokedSessions, ...revokedHung]) await stores.revocations.revoke(sid, 60);
    await stores.userRevocations.revokeUser(revokedUser, nowS);

    const asked: Asked[] = [
      ...revokedSessions.map((sid): Asked => ({ sid, user: liveUser, expected: "session" })),
      ...revokedUserSids.map((sid): Asked => ({ sid, user: revokedUser, expected: "user" })),
      ...live.slice(15, 80).map((sid): Asked => ({ sid, user: liveUser, expected: null })),
      ...revokedHung.map((sid): Asked => ({ sid, user: liveUser, expected: "unavailable" })),
      ...[...hungSet.slice(5, 20), ...hungLegacy.slice(5, 20)].map((sid): Asked => ({ sid, user: liveUser, expected: "unavailable" })),
    ];
    // Interleaved, so the checks on the hung primary sit between live ones in the batch.
    asked.sort((a, b) => (a.sid < b.sid ? -1 : 1));
    expect(asked.length).toBeLessThanOrEqual(256); // one batch

    // Before: every check answered.
    const before = await askInOneTurn(asked, iatS);
    expect(before.filter((s) => s.answer === "unavailable")).toEqual([]);

    let settled: Settled[];
    hung.signal("SIGSTOP");
    try {
      settled = await askInOneTurn(asked, iatS);
    } finally {
      hung.signal("SIGCONT");
    }
    const wrong = settled.filter((s) => s.answer !== s.expected);
    expect(wrong.map((s) => `${s.sid}: ${String(s.answer)} (expected ${String(s.expected)})`)).toEqual([]);
    // Answered by their own reads, not held until the hung primary's reads gave up at the deadline.
    const lastAnswered = Math.max(...settled.filter((s) => s.expected !== "unavailable").map((s) => s.afterMs));
    const firstRefused = Math.min(...settled.filter((s) => s.expected === "unavailable").map((s) => s.afterMs));
    console.log(`last answered after ${lastAnswered.toFixed(1)} ms, first refused after ${firstRefused.toFixed(1)} ms`);
    expect(lastAnswered).toBeLessThan(DEADLINE_MS);
    expect(lastAnswered).toBeLessThan(firstRefused);

    // Resumed: the same batch is answered whole again (no failover happened in between).
    const after = await askInOneTurn(asked, iatS);
    const expectedAfter = (s: Asked) => (s.expected === "unavailable" ? (revokedHung.includes(s.sid) ? "session" : null) : s.expected);
    expect(after.filter((s) => s.answer !== expectedAfter(s)).map((s) => `${s.sid}: ${String(s.answer)}`)).toEqual([]);
  }, 30_000);
});
