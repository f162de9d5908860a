/**
 * Redis outages as clients see them. Presence: a socket that leaves (or joins) while its presence write
 * cannot reach Redis is settled once Redis answers again — no ghost member (its process keeps
 * renewing its lease, so the entry would never expire) and the watchers get the `presence.leave`.
 *
 * The outage is the test's own redis-server stopped (SIGSTOP: connections stay open, nothing
 * answers) and resumed (SIGCONT) once each step it is for has happened, so it lasts exactly as long
 * as the test needs, however slow the machine (a fixed `CLIENT PAUSE` window could end before a
 * step ran on a loaded machine).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { inService, startCluster, type TestCluster } from "./support/cluster.ts";
import { session, TEST_API_KEY } from "./support/server.ts";
import { TestClient } from "./support/client.ts";
import { metric } from "./support/metrics.ts";
import { upgradeStatus } from "./support/raw-ws.ts";

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster(["outage-a", "outage-b"]);
}, 30_000);
afterAll(async () => {
  cluster.redis.signal("SIGCONT");
  await cluster.stop();
});

/** Runs `during` while Redis is stopped; resumes it, and waits until every process is ready again. */
async function whileRedisStopped<T>(during: () => Promise<T>): Promise<T> {
  cluster.redis.signal("SIGSTOP");
  try {
    return await during();
  } finally {
    cluster.redis.signal("SIGCONT");
    await Promise.all(cluster.nodes.map((node) => inService(node, 15_000)));
  }
}

async function until(check: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} not within ${timeoutMs} ms`);
    await Bun.sleep(20);
  }
}

async function members(topic: string): Promise<string[]> {
  const res = await fetch(`${cluster.nodes[1]!.url}/api/presence/${topic}`, { headers: { Authorization: `Bearer ${TEST_API_KEY}` } });
  const body = (await res.json()) as { members: { user: { id: string } }[] };
  return body.members.map((m) => m.user.id).sort();
}

describe("presence writes that fail during a Redis outage are retried", () => {
  test("an unsubscribe while Redis is stopped still ends in presence.leave and a clean member list", async () => {
    const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    const topic = "room:outage";
    const bob = await TestClient.connect(b.wsUrl, { cookie: (await session(b, "bob")).cookie });
    const alice = await TestClient.connect(a.wsUrl, { cookie: (await session(a, "alice")).cookie });
    try {
      await bob.subscribe(topic);
      await alice.subscribe(topic);
      await bob.next((f) => f.type === "presence.join" && f.user.id === "alice", 5000);
      expect(await members(topic)).toEqual(["alice", "bob"]);

      const failedBefore = a.logs().split("presence leave failed").length;
      await whileRedisStopped(async () => {
        const ack = await alice.request({ type: "unsubscribe", topic });
        expect(ack.type).toBe("ack");
        // Redis comes back only once the leave's write has failed: what is tested is its retry.
        await until(() => a.logs().split("presence leave failed").length > failedBefore, "the presence leave's write failing", 10_000);
      });

      const leave = await bob.next((f) => f.type === "presence.leave" && f.user.id === "alice", 10_000);
      expect(leave.topic).toBe(topic);
      expect(await members(topic)).toEqual(["bob"]);
    } finally {
      alice.ws.close();
      bob.ws.close();
    }
  }, 30_000);
});

describe("a long Redis stall", () => {
  test("the broker asks its stalled connection to reconnect once, not once per failed canary: no listener-leak warning", async () => {
    const [a] = cluster.nodes as [(typeof cluster.nodes)[0]];
    const alice = await TestClient.connect(a.wsUrl, { cookie: (await session(a, "alice")).cookie });
    try {
      // Topics spread over the subscriber links: each link's canary fails on its own.
      for (let i = 0; i < 24; i++) await alice.subscribe(`room:stall-${i}`);
      await whileRedisStopped(() => Bun.sleep(8000));
      expect(a.faults()).toEqual([]);
    } finally {
      alice.ws.close();
    }
  }, 40_000);
});

describe("a publish Redis did not confirm", () => {
  test("is answered 503 / unavailable saying it may still be applied (and it is, once Redis resumes): retry with the same key", async () => {
    const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    const topic = `room:unconfirmed-${Date.now()}`;
    const alice = await TestClient.connect(a.wsUrl, { cookie: (await session(a, "alice")).cookie });
    const post = (node: typeof a, body: unknown) =>
      fetch(`${node.url}/api/publish`, { method: "POST", headers: { Authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    try {
      const [http, ws] = await whileRedisStopped(async () => {
        const res = await post(a, { topic, data: "api", key: "k-api" });
        return [{ status: res.status, body: await res.json() }, await alice.request({ type: "publish", topic, data: "ws", key: "k-ws" })] as const;
      });
      expect(http.status).toBe(503);
      expect(http.body.error).toEqual({ code: "unavailable", message: "publish: the broker did not confirm it in time and may still apply it; retry with the same key" });
      expect(ws).toMatchObject({ type: "error", code: "unavailable", message: http.body.error.message });
      // Redis ran both when it resumed: that is why the answer may not say "nothing was published".
      const history = await (await fetch(`${b.url}/api/history/${topic}`, { headers: { Authorization: `Bearer ${TEST_API_KEY}` } })).json();
      expect(history.messages.map((m: { data: unknown }) => m.data).sort()).toEqual(["api", "ws"]);
      // The retry the answer asks for publishes nothing more.
      const retried = await post(b, { topic, data: "api", key: "k-api" });
      expect(retried.status).toBe(202);
      const after = await (await fetch(`${b.url}/api/history/${topic}`, { headers: { Authorization: `Bearer ${TEST_API_KEY}` } })).json();
      expect(after.seq).toBe(2);
    } finally {
      alice.ws.close();
    }
  }, 30_000);
});

describe("first-message auth while Redis is unreachable", () => {
  test("closes with 1013 (try again later), like a cookie socket, and logs no error", async () => {
    const a = cluster.nodes[0]!;
    const res = await fetch(`${a.url}/auth/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: "carol", password: "carol-password" }) });
    const { token } = (await res.json()) as { token: string };
    const close = await whileRedisStopped(async () => {
      const client = new TestClient(a.wsUrl);
      await client.until(() => client.opened, 3000, "open");
      client.send({ type: "auth", token });
      return client.waitClose(5000);
    });
    expect(close.code).toBe(1013);
    expect(a.faults()).toEqual([]);
  }, 15_000);
});

describe("Redis trouble reaches clients as a sentence, never as the deployment's internals", () => {
  test("login, publish, presence and a cookie upgrade while Redis is stopped: 503/unavailable without Redis's own words", async () => {
    const a = cluster.nodes[0]!;
    const alice = await TestClient.connect(a.wsUrl, { cookie: (await session(a, "alice")).cookie });
    // A session this process never checked: its upgrade must read the revocation store.
    const carol = (await session(a, "carol")).cookie;
    const unavailableBefore = await metric(a, "switchboard_upgrades_rejected_total", { reason: "unavailable" });
    try {
      const [login, loginText, published, presence, upgrade] = await whileRedisStopped(async () => {
        const [login, published, presence, upgrade] = await Promise.all([
          fetch(`${a.url}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: "bob", password: "bob-password" }) }),
          alice.request({ type: "publish", topic: "room:quiet", data: 1 }),
          alice.request({ type: "presence", topic: "room:quiet" }),
          upgradeStatus(a.wsUrl, { Cookie: carol }),
        ]);
        return [login, await login.text(), published, presence, upgrade] as const;
      });
      expect(login.status).toBe(503);
      expect(published).toMatchObject({ type: "error", code: "unavailable" });
      expect(presence).toMatchObject({ type: "error", code: "unavailable" });
      // A refusal a client sees only as 1006: counted by its reason, like the caps' and the origin's.
      expect(upgrade.status).toBe(503);
      expect(await metric(a, "switchboard_upgrades_rejected_total", { reason: "unavailable" })).toBe(unavailableBefore + 1);
      for (const text of [loginText, JSON.stringify(published), JSON.stringify(presence), upgrade.body]) {
        expect(text).not.toMatch(/timed out|ECONNREFUSED|Stream|enableOfflineQueue|127\.0\.0\.1|:\d{4,5}\b/);
        expect(text).not.toContain(String(cluster.redis.port));
      }
    } finally {
      alice.ws.close();
    }
  }, 15_000);
});
