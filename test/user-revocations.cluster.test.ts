/**
 * SPEC §6/§7 on a real Redis Cluster (3 primaries, 3 replicas), from outside: Switchboard processes,
 * first-message tokens minted by `/api/tokens`, and one primary hung (SIGSTOP) or killed. User
 * revocations live in 16 sorted sets (`sb:revocations:{<n>}:users`, n by the user id), so a
 * primary down refuses only the credentials whose session or user shard it owns (1013
 * unavailable), not every credential of the deployment; revoked users stay refused; after the
 * failover everything is answered again. The single key of versions before rev14
 * (`sb:{revocations}:users`) is honoured: written before a start with USER_REVOCATIONS_LEGACY=write
 * (copied into the shards), and at any time with the default `read` (a rolling deploy).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { CLUSTER_ENV, inService } from "./support/cluster.ts";
import { startRedisCluster, type ClusterNode, type TestRedisCluster } from "./support/redis-cluster.ts";
import { api, mintToken } from "./support/server-api.ts";
import { killAllServers, startServer, type TestServer } from "./support/server.ts";
import type { Cluster } from "ioredis";
import { closeConnection, connectWithin, createClusterConnection } from "../src/redis/connection.ts";
import { redisStores, storeKeys } from "../src/stores/redis.ts";
import { RevocationReader } from "../src/stores/revocation-reads.ts";
import { USER_REVOCATION_RETENTION_S } from "../src/stores/stores.ts";

/** The layout of docs/redis.md: the user's shard is a 31-multiplier string hash of its id, mod 16. */
const LEGACY_USERS = "sb:{revocations}:users";
const shardOf = (id: string) => {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return h % 16;
};
const userShard = (user: string) => `sb:revocations:{${shardOf(user)}}:users`;

let redis: TestRedisCluster;
/** USER_REVOCATIONS_LEGACY=write: after a transition (the legacy key is copied at start, then not read). */
let after: TestServer;
/** The default (`read`): during a rolling deploy from a version before rev14. */
let during: TestServer;
/** The stores' connections, as the server opens them on a cluster (redis/services.ts). */
let client: Cluster;
let reads: Cluster;
const clients = new Set<TestClient>();
const tag = Math.random().toString(36).slice(2, 7);
const nowS = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  redis = await startRedisCluster();
  // Revoked by a version before rev14 before this one started: only in the legacy key. A minute
  // ahead, so the tokens minted once the servers are up are issued before it.
  await redis.cli(await redis.primaryOf(LEGACY_USERS), "ZADD", LEGACY_USERS, String(nowS() + 60), `legacy-before-${tag}`);
  const env = { ...CLUSTER_ENV, REDIS_CLUSTER: "true", REDIS_URL: redis.url, LOG_LEVEL: "info" };
  [after, during] = await Promise.all([
    startServer({ ...env, INSTANCE_ID: "ur-after", USER_REVOCATIONS_LEGACY: "write" }),
    startServer({ ...env, INSTANCE_ID: "ur-during" }),
  ]);
  await Promise.all([inService(after), inService(during)]);
  client = createClusterConnection(redis.url, { name: "ur-data" });
  reads = createClusterConnection(redis.url, { name: "ur-auth-reads", commandTimeoutMs: 500, autoPipelining: true });
  await Promise.all([connectWithin(client, 5000), connectWithin(reads, 5000)]);
}, 60_000);
afterAll(async () => {
  for (const node of redis?.nodes ?? []) node.signal("SIGCONT");
  await closeAll(clients);
  await Promise.all([client, reads].filter(Boolean).map(closeConnection));
  killAllServers();
  await redis?.stop();
});

/** First-message auth with `token` on `server`: "welcome", or the code the socket was closed with. */
async function outcome(server: TestServer, token: string): Promise<"welcome" | number> {
  const client = new TestClient(server.wsUrl);
  clients.add(client);
  await client.waitOpen();
  client.send({ type: "auth", token });
  const result = await client.until(() => (client.frames.some((f) => f.type === "welcome") ? "welcome" : (client.close?.code ?? false)), 5000, "welcome or close", true);
  if (result !== "welcome" && result !== 4001) console.log(`outcome on :${server.port}: ${client.close?.code} ${client.close?.reason}; frames ${JSON.stringify(client.frames)}`);
  client.terminate();
  clients.delete(client);
  return result;
}

/** The session id a token carries (its `sid` claim). */
const sidOf = (token: string): string => (JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as { sid: string }).sid;

/** Which primary owns each of the 16 shard slots (sessions' and users' share them). */
async function shardOwners(): Promise<number[]> {
  return Promise.all(Array.from({ length: 16 }, (_, n) => redis.primaryOf(`sb:revocations:{${n}}`)));
}

/**
 * A user id whose shard is (`onPort`) or is not (`!onPort`) on `port`. Its inbox topic (joined before
 * `welcome`, `sb:{user:<id>}:ch`) is not on `port` either: only the revocation reads decide.
 */
async function userWhere(owners: number[], port: number, onPort: boolean, name: string): Promise<string> {
  for (let i = 0; ; i++) {
    const user = `${name}-${tag}-${i}`;
    if ((owners[shardOf(user)] === port) === onPort && (await redis.primaryOf(`sb:{user:${user}}:ch`)) !== port) return user;
  }
}

/** A token of `user` whose session keys (its shard and `sb:revoked:<sid>`) are not on `port`: only its user's shard decides. */
async function tokenAway(owners: number[], port: number, user: string): Promise<string> {
  for (let i = 0; i < 60; i++) {
    const token = await mintToken(after, user);
    const sid = sidOf(token);
    if (owners[shardOf(sid)] !== port && (await redis.primaryOf(`sb:revoked:${sid}`)) !== port) return token;
  }
  throw new Error(`no token of ${user} with its session keys off ${port}`);
}

async function revoke(server: TestServer, user: string): Promise<void> {
  const { status } = await api(server, "POST", "/api/disconnect", { user, revoke: true });
  expect(status).toBe(200);
}

interface Cast {
  elsewhere: string;
  onDown: string;
  revokedElsewhere: string;
  revokedOnDown: string;
}

/** Tokens of four users on `port` or off it, the two revoked ones issued before their revoke. */
async function cast(port: number, name: string): Promise<Cast> {
  const owners = await shardOwners();
  const users = {
    elsewhere: await userWhere(owners, port, false, `${name}-away`),
    onDown: await userWhere(owners, port, true, `${name}-down`),
    revokedElsewhere: await userWhere(owners, port, false, `${name}-revoked-away`),
    revokedOnDown: await userWhere(owners, port, true, `${name}-revoked-down`),
  };
  const tokens = {
    elsewhere: await tokenAway(owners, port, users.elsewhere),
    onDown: await tokenAway(owners, port, users.onDown),
    revokedElsewhere: await tokenAway(owners, port, users.revokedElsewhere),
    revokedOnDown: await tokenAway(owners, port, users.revokedOnDown),
  };
  await revoke(after, users.revokedElsewhere);
  await revoke(after, users.revokedOnDown);
  return tokens;
}

async function outcomes(server: TestServer, tokens: Cast): Promise<Record<keyof Cast, "welcome" | number>> {
  const [elsewhere, onDown, revokedElsewhere, revokedOnDown] = await Promise.all([tokens.elsewhere, tokens.onDown, tokens.revokedElsewhere, tokens.revokedOnDown].map((t) => outcome(server, t)));
  return { elsewhere: elsewhere!, onDown: onDown!, revokedElsewhere: revokedElsewhere!, revokedOnDown: revokedOnDown! };
}

const ANSWERED: Record<keyof Cast, "welcome" | number> = { elsewhere: "welcome", onDown: "welcome", revokedElsewhere: 4001, revokedOnDown: 4001 };

const USER_SHARDS = Array.from({ length: 16 }, (_, n) => `sb:revocations:{${n}}:users`);

describe("the stores on the cluster beside versions before rev14, which know only sb:{revocations}:users", () => {
  test("with USER_REVOCATIONS_LEGACY=read (the default), a user revoked only there is refused, with and without batched reads, and listed by revokedSince", async () => {
    const user = `legacy-user-${Date.now().toString(36)}`;
    await client.zadd(LEGACY_USERS, nowS(), user);
    for (const stores of [redisStores(client), redisStores(client, new RevocationReader(reads, 500))]) {
      expect(await Promise.all([stores.userRevocations.isRevoked(user, nowS() - 60), stores.userRevocations.isRevoked(`${user}-other`, nowS() - 60)])).toEqual([true, false]);
      expect(await Promise.all([stores.credentialRevocations.revokedBy("legacy-sid", user, nowS() - 60), stores.credentialRevocations.revokedBy("legacy-sid", `${user}-other`, nowS() - 60)])).toEqual(["user", null]);
      expect((await stores.userRevocations.revokedSince(nowS() - 5)).has(user)).toBe(true);
    }
  });

  test("a revoke by this version is written to it with read and write (an earlier version's ZSCORE sees it), and to its user's shard; with off to the shard only", async () => {
    for (const legacy of ["read", "write", "off"] as const) {
      const user = `legacy-reader-${legacy}-${Date.now().toString(36)}`;
      const stores = redisStores(client, undefined, legacy);
      const atS = nowS();
      await stores.userRevocations.revokeUser(user, atS);
      expect(await client.zscore(LEGACY_USERS, user)).toBe(legacy === "off" ? null : String(atS));
      const inShards = await Promise.all(USER_SHARDS.map((key) => client.zscore(key, user)));
      expect(inShards.filter((score) => score !== null)).toEqual([String(atS)]);
      await stores.close();
    }
  });

  test("with write or off, its entries are copied into the shards at start (a later revoke there wins); checks read it until the copy is done, then only the shards", async () => {
    for (const legacy of ["write", "off"] as const) {
      const tag = `${legacy}-${Date.now().toString(36)}`;
      const atS = nowS();
      const [copied, newer] = [`copied-${tag}`, `newer-${tag}`];
      await client.zadd(LEGACY_USERS, atS - 100, copied, atS - 100, newer);
      await client.zadd(storeKeys.userRevocations(newer), atS, newer); // a later revoke already in its shard
      const batched = redisStores(client, new RevocationReader(reads, 500), legacy);
      // Asked in the turn the stores were made: the copy has not answered, so the legacy key is read.
      expect(await batched.userRevocations.isRevoked(copied, atS - 100)).toBe(true);
      const deadline = Date.now() + 2000;
      while ((await client.zscore(storeKeys.userRevocations(copied), copied)) === null && Date.now() < deadline) await Bun.sleep(10);
      expect(await client.zscore(storeKeys.userRevocations(copied), copied)).toBe(String(atS - 100));
      await Bun.sleep(20);
      // Read from the shard now: an entry only in the legacy key is no longer seen (no version before rev14 may run with write or off).
      const stray = `stray-${tag}`;
      await client.zadd(LEGACY_USERS, atS, stray);
      expect(await Promise.all([batched.userRevocations.isRevoked(copied, atS - 100), batched.userRevocations.isRevoked(stray, atS - 100)])).toEqual([true, false]);
      expect(await batched.credentialRevocations.revokedBy("copy-sid", copied, atS - 100)).toBe("user");
      expect(await client.zscore(storeKeys.userRevocations(newer), newer)).toBe(String(atS));
      // Copying again (another start) changes nothing.
      await client.zrem(LEGACY_USERS, stray);
      const again = redisStores(client, undefined, legacy);
      await Bun.sleep(100);
      expect(await client.zscore(storeKeys.userRevocations(copied), copied)).toBe(String(atS - 100));
      await Promise.all([batched.close(), again.close()]);
    }
  });

  test("retention: a revoke drops the entries past USER_REVOCATION_RETENTION_S from every shard and from the legacy key", async () => {
    const old = nowS() - USER_REVOCATION_RETENTION_S - 60;
    const tag = Date.now().toString(36);
    await Promise.all(USER_SHARDS.map((key, n) => client.zadd(key, old, `expired-${tag}-${n}`)));
    await client.zadd(LEGACY_USERS, old, `expired-${tag}-legacy`);
    await redisStores(client).userRevocations.revokeUser(`pruner-${tag}`, nowS());
    const deadline = Date.now() + 2000;
    const left = async () => (await Promise.all(USER_SHARDS.concat(LEGACY_USERS).map((key) => client.zcount(key, "-inf", old)))).reduce((a, b) => a + b, 0);
    while ((await left()) > 0 && Date.now() < deadline) await Bun.sleep(10);
    expect(await left()).toBe(0);
  });
});

describe("user revocations sharded on a Redis Cluster", () => {
  test("a user revoked in the legacy key only is refused: written before the start (copied) and during a rolling deploy (read)", async () => {
    const legacyPort = await redis.primaryOf(LEGACY_USERS);
    const issuedBefore = await mintToken(after, `legacy-before-${tag}`);
    expect(await outcome(after, issuedBefore)).toBe(4001);
    expect(await outcome(during, issuedBefore)).toBe(4001);
    // As a version before rev14 revokes while this one runs beside it.
    const lateUser = `legacy-during-${tag}`;
    const token = await mintToken(after, lateUser);
    expect(await outcome(during, token)).toBe("welcome");
    await redis.cli(legacyPort, "ZADD", LEGACY_USERS, String(nowS()), lateUser);
    expect(await outcome(during, token)).toBe(4001);
    // And a revoke by this version reaches that key, which such a version reads.
    const revokedHere = `revoked-here-${tag}`;
    await revoke(after, revokedHere);
    expect(Number(await redis.cli(legacyPort, "ZSCORE", LEGACY_USERS, revokedHere))).toBeGreaterThan(nowS() - 60);
  }, 30_000);

  test("the primary of the legacy key and of 6 of the 16 shards hung (SIGSTOP): users whose shards are elsewhere connect, revoked ones are refused; only those whose shard it owns are unavailable", async () => {
    const port = await redis.primaryOf(LEGACY_USERS);
    const tokens = await cast(port, "stop");
    expect(await outcomes(after, tokens)).toEqual(ANSWERED);
    const hung = redis.nodes.find((n) => n.port === port) as ClusterNode;
    let stopped: [Record<keyof Cast, "welcome" | number>, Record<keyof Cast, "welcome" | number>];
    hung.signal("SIGSTOP");
    try {
      // Resumed within cluster-node-timeout (2 s): no failover.
      stopped = await Promise.all([outcomes(after, tokens), outcomes(during, tokens)]);
    } finally {
      hung.signal("SIGCONT");
    }
    expect(stopped[0]).toEqual({ elsewhere: "welcome", onDown: 1013, revokedElsewhere: 4001, revokedOnDown: 1013 });
    // During a transition every check still reads the legacy key: all are unavailable (docs/redis.md).
    expect(stopped[1]).toEqual({ elsewhere: 1013, onDown: 1013, revokedElsewhere: 1013, revokedOnDown: 1013 });
    expect(await outcomes(after, tokens)).toEqual(ANSWERED);
    expect(await outcomes(during, tokens)).toEqual(ANSWERED);
  }, 30_000);

  test("kill -9 of the primary of a user shard: its users are unavailable until the replica takes over, the others connect; after the failover everyone is answered, revocations kept", async () => {
    const owners = await shardOwners();
    const legacyPort = await redis.primaryOf(LEGACY_USERS);
    // Another primary than the legacy key's, so both setups answer the users elsewhere.
    const port = owners.find((p) => p !== legacyPort)!;
    const tokens = await cast(port, "kill");
    await redis.nodes.find((n) => n.port === port)!.kill();
    const down = await Promise.all([outcomes(after, tokens), outcomes(during, tokens)]);
    // Right after a kill the user's inbox join (before `welcome`, on another primary) was seen to
    // fail once in ~8 runs ("inbox join failed": the cluster link, not the revocation read, which
    // answered): such a socket is tried again, while the primary is still down.
    for (const [i, server] of [after, during].entries()) {
      for (let again = 0; again < 2 && down[i]!.elsewhere === 1013 && server.logs().includes("inbox join failed"); again++) {
        console.log(`${server.url}: the inbox join failed right after the kill; connecting again`);
        down[i]!.elsewhere = await outcome(server, tokens.elsewhere);
      }
    }
    for (const answers of down) expect(answers).toEqual({ elsewhere: "welcome", onDown: 1013, revokedElsewhere: 4001, revokedOnDown: 1013 });
    // Still before the failover: the users of the dead primary's shards are still refused.
    expect(await outcome(after, tokens.onDown)).toBe(1013);
    await redis.waitFailedOver(port);
    // Each process learns the new slot map on its own (re-read at most once a second while a link
    // is down, docs/redis.md): answered within 3 s of the failover.
    const failedOver = Date.now();
    let answers = await Promise.all([outcomes(after, tokens), outcomes(during, tokens)]);
    while (answers.some((a) => a.onDown === 1013 || a.revokedOnDown === 1013) && Date.now() - failedOver < 3000) {
      await Bun.sleep(200);
      answers = await Promise.all([outcomes(after, tokens), outcomes(during, tokens)]);
    }
    console.log(`kill: all answered ${Date.now() - failedOver} ms after the cluster failed over`);
    expect(answers).toEqual([ANSWERED, ANSWERED]);
    // A revoke after the failover, in a shard the dead primary owned, is refused on both.
    const user = await userWhere(owners, port, true, "kill-after");
    expect(await redis.primaryOf(userShard(user))).not.toBe(port);
    const token = await mintToken(after, user);
    await revoke(during, user);
    expect([await outcome(after, token), await outcome(during, token)]).toEqual([4001, 4001]);
  }, 60_000);
});
