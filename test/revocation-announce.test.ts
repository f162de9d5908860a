/**
 * A revocation is never stored without its control message (docs/redis.md "The revocation fence").
 * Behind the fence B answers a session from a kept "not revoked" until it hears of its revocation:
 * a logout stored in Redis whose control message then failed would be accepted by B for good. The
 * revoker here is this test process, built from the server's own parts, whose broker can no longer
 * send (closed, as a command connection that is down): the store publishes the control message in
 * the transaction that writes the revocation, and B, a real server on the same Redis, refuses.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type Redis from "ioredis";
import { decodeJwt } from "jose";
import { RedisBroker } from "../src/broker/redis.ts";
import { RevocationView } from "../src/auth/revocation-view.ts";
import { SessionRevocation } from "../src/gateway/session-revocation.ts";
import { Registry } from "../src/gateway/registry.ts";
import type { Socket } from "../src/gateway/connection-host.ts";
import { redisStores } from "../src/stores/redis.ts";
import { closeConnection, connectWithin, createConnection } from "../src/redis/connection.ts";
import { startCluster, type TestCluster } from "./support/cluster.ts";
import { keptOn, upgradeCode } from "./support/fence.ts";
import { loginSession, type TestServer } from "./support/server.ts";

let cluster: TestCluster;
let B: TestServer;
let data: Redis;
let broker: RedisBroker;

beforeAll(async () => {
  cluster = await startCluster(["announce-b"]);
  B = cluster.nodes[0]!;
  data = createConnection(cluster.redis.url, { name: "announce-test" });
  await connectWithin(data, 2000);
  broker = new RedisBroker({ url: cluster.redis.url, instanceId: "announce-a", historySize: 10, historyTtlS: 60, fenceMs: 250, log: () => {} });
  await broker.start({ onPublication() {}, onEphemeral() {}, onControl() {}, onReconnect() {} });
  // From here on its control messages cannot be sent; its fence still says how they are announced.
  await broker.close();
}, 40_000);
afterAll(async () => {
  await broker?.close();
  if (data) await closeConnection(data);
  await cluster?.stop();
});

/** The revoker's parts as the server assembles them (services.ts), on the test's data connection. */
function revoker() {
  const stores = redisStores(data);
  const view = new RevocationView(stores.revocations, stores.credentialRevocations, broker.fence);
  const sessions = new SessionRevocation({ broker, stores: { ...stores, revocations: view, credentialRevocations: view }, revocations: view }, new Registry<Socket>());
  return { stores, sessions };
}

const sidOf = (cookie: string) => decodeJwt(cookie.slice(cookie.indexOf("=") + 1)).sid as string;

describe("a revocation whose control message can no longer be sent on its own", () => {
  test("a logout: B, which kept the session, refuses it", async () => {
    const { cookie } = await loginSession(B, "alice");
    await keptOn(B, cookie);
    await revoker().sessions.revoke(sidOf(cookie), 60);
    expect(await upgradeCode(B, cookie)).toBe(401);
  }, 30_000);

  test("a user's revocation: B, which kept the user's session, refuses it", async () => {
    const { cookie } = await loginSession(B, "bob");
    await keptOn(B, cookie);
    const announcement = broker.fence!.announcement({ type: "revoke-user", user: "bob" });
    expect(await revoker().stores.userRevocations.revokeUser("bob", Math.floor(Date.now() / 1000), announcement)).toBe(true);
    await Bun.sleep(250); // the window a revoker waits (api-server.ts) before it answers
    expect(await upgradeCode(B, cookie)).toBe(401);
  }, 30_000);
});
