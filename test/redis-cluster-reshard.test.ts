/**
 * SPEC §7 under a live resharding: three Switchboard processes on a real Redis Cluster while an
 * operator moves slots (`CLUSTER SETSLOT … IMPORTING/MIGRATING`, `MIGRATE … KEYS`, `SETSLOT … NODE`,
 * as `redis-cli --cluster reshard` does), to a primary added for it and between the old ones.
 * Clients meet -ASK, -TRYAGAIN, then -MOVED; sharded subscribers of a moved slot are unsubscribed
 * by the server. Checked from outside, under load: every acknowledged publication once, in order, to
 * every subscriber (or `resync`); no key published twice in an epoch; history continuous; refusals
 * only while a slot migrates (plus REDIS_COMMAND_TIMEOUT_MS); a publication after the move reaches
 * every socket; presence right; a revoked session never answered "not revoked"; every acked
 * publication of a webhook namespace sent as `message.published`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll, type Frame } from "./support/client.ts";
import { checkDelivery, connectAsTheSdkDoes, subscribeAsTheSdkDoes as subscribe, type Acked as DeliveryAcked } from "./support/cluster-delivery.ts";
import { CLUSTER_ENV, inService, startClusterDeployment } from "./support/cluster.ts";
import { closeConnection, connectWithin, createClusterConnection } from "../src/redis/connection.ts";
import { redisStores, storeKeys } from "../src/stores/redis.ts";
import { RevocationReader } from "../src/stores/revocation-reads.ts";
import type { TestRedisCluster } from "./support/redis-cluster.ts";
import { startReceiver } from "./support/webhook-receiver.ts";
import { apiPublish, killAllServers, loginSession, startServer, TEST_API_KEY, type Session, type TestServer } from "./support/server.ts";

const COMMAND_TIMEOUT_MS = 500;
let redis: TestRedisCluster;
let nodes: TestServer[];
let session: Session;
const clients = new Set<TestClient>();

beforeAll(async () => {
  ({ redis, nodes, session } = await startClusterDeployment(["rs-a", "rs-b", "rs-c"], { REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS) }));
}, 60_000);
afterAll(async () => {
  await closeAll(clients);
  killAllServers();
  await redis?.stop();
});

async function connect(server: TestServer): Promise<TestClient> {
  const client = await connectAsTheSdkDoes(server.wsUrl, session.cookie);
  clients.add(client);
  return client;
}

/** Topics whose slots are owned by the given primaries, one per primary per `perShard`. */
async function topicsOn(prefix: string, ports: number[], perShard = 1): Promise<{ topic: string; port: number }[]> {
  const byPort = new Map<number, string[]>(ports.map((p) => [p, []]));
  for (let i = 0; [...byPort.values()].some((l) => l.length < perShard); i++) {
    const topic = `room:${prefix}-${i}-${Math.random().toString(36).slice(2, 6)}`;
    const list = byPort.get(await redis.primaryOf(`sb:{${topic}}:ch`));
    if (list !== undefined && list.length < perShard) list.push(topic);
  }
  return [...byPort].flatMap(([port, list]) => list.map((topic) => ({ topic, port })));
}

interface Acked extends DeliveryAcked {
  key: string;
}

interface Refusal {
  at: number;
  what: string;
}

/**
 * Publishers per topic, one over a WebSocket and one over `POST /api/publish` (alternating
 * processes), each publication with its own key, sent again with the same key on `unavailable` as
 * the SDK does, until acked.
 */
function publishers(name: string, topics: string[], publishersWs: TestClient[]) {
  const acked: Acked[] = [];
  const refusals: Refusal[] = [];
  let running = true;
  const publishOnce = async (topic: string, data: string, key: string, via: number): Promise<Acked | null> => {
    if (via % 2 === 0) {
      const reply = await apiPublish(nodes[via % nodes.length]!, { topic, data, key }).catch((e: Error) => ({ status: 0, body: e.message }));
      if (reply.status === 202) return { topic, seq: reply.body.seq, epoch: reply.body.epoch, data, key };
      refusals.push({ at: Date.now(), what: `http ${reply.status} ${JSON.stringify(reply.body)}` });
      return null;
    }
    const client = publishersWs[via % publishersWs.length]!;
    try {
      const ack = await client.publish(topic, data, key);
      return { topic, seq: ack.seq, epoch: ack.epoch, data, key };
    } catch (error) {
      refusals.push({ at: Date.now(), what: `ws ${(error as Error).message}` });
      return null;
    }
  };
  const loops = topics.map(async (topic, t) => {
    for (let i = 0; running; i++) {
      const data = `${name}-${t}-${i}`;
      const key = `k-${name}-${t}-${i}`;
      for (let attempt = 0; attempt < 100; attempt++) {
        const ok = await publishOnce(topic, data, key, i + attempt);
        if (ok !== null) {
          acked.push(ok);
          break;
        }
        await Bun.sleep(50);
      }
      await Bun.sleep(20);
    }
  });
  return {
    acked,
    refusals,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** No key acked at two seqs of one epoch, no (epoch, seq) acked with two datas. */
function checkAcks(acked: Acked[]): void {
  const byKey = new Map<string, string>();
  const bySeq = new Map<string, string>();
  for (const a of acked) {
    const at = `${a.topic} ${a.epoch}:${a.seq}`;
    const keyed = `${a.epoch} ${a.key}`;
    if (byKey.has(keyed) && byKey.get(keyed) !== at) throw new Error(`key ${a.key} acked at ${byKey.get(keyed)} and ${at}`);
    byKey.set(keyed, at);
    if (bySeq.has(at) && bySeq.get(at) !== a.data) throw new Error(`${at} acked for ${bySeq.get(at)} and ${a.data}`);
    bySeq.set(at, a.data);
  }
}

/** Reads the topic's history from every process: contiguous seqs in one epoch, and what was acked there. */
async function checkHistory(topic: string, acked: Acked[]): Promise<void> {
  for (const server of nodes) {
    const res = await fetch(`${server.url}/api/history/${encodeURIComponent(topic)}?limit=1000`, { headers: { Authorization: `Bearer ${TEST_API_KEY}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { epoch: string; seq: number; messages: Frame[] };
    const seqs = body.messages.map((m) => m.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
    expect(seqs.at(-1)).toBe(body.seq);
    const data = new Map(body.messages.map((m) => [m.seq, m.data]));
    for (const a of acked.filter((x) => x.topic === topic && x.epoch === body.epoch && x.seq >= seqs[0]!)) expect(data.get(a.seq)).toBe(a.data);
  }
}

/** Refusals outside every [start, end + COMMAND_TIMEOUT_MS + slack] window of a slot's migration. */
function outsideWindows(refusals: Refusal[], windows: { start: number; end: number }[], slackMs = 500): Refusal[] {
  return refusals.filter((r) => !windows.some((w) => r.at >= w.start && r.at <= w.end + COMMAND_TIMEOUT_MS + slackMs));
}

describe("Redis Cluster live resharding under load", () => {
  test("busy topics' slots moved to a new primary and between old ones: delivered once in order, keys once, history continuous, live after the move", async () => {
    const before = await redis.primaries();
    const spread = await topicsOn("reshard", before, 2);
    const topics = spread.map((s) => s.topic);
    const subscribers: TestClient[] = [];
    for (const server of nodes) {
      for (let i = 0; i < 2; i++) {
        const client = await connect(server);
        subscribers.push(client);
        for (const topic of topics) await subscribe(client, topic);
      }
    }
    const publishersWs = await Promise.all(nodes.map((server) => connect(server)));
    const load = publishers("reshard", topics, publishersWs);
    const windows: { start: number; end: number }[] = [];
    const migrate = async (slots: number[], to: number) => {
      const start = Date.now();
      const report = await redis.migrateSlots(slots, to, { pauseMs: 100, batch: 10 });
      console.log(`reshard: ${JSON.stringify(report)} to ${to}`);
      windows.push({ start, end: Date.now() });
      return report;
    };
    let fresh = 0;
    try {
      await Bun.sleep(500);
      fresh = await redis.addPrimary();
      console.log(`reshard: new primary ${fresh}`);
      // One topic of every old primary to the new one, the second of the first primary to another old one.
      const toNew = spread.filter((_, i) => i % 2 === 0);
      const report = await migrate(toNew.map((s) => redis.slotOf(`sb:{${s.topic}}:ch`)), fresh);
      const across = spread[1]!;
      const other = before.find((p) => p !== across.port)!;
      const report2 = await migrate([redis.slotOf(`sb:{${across.topic}}:ch`)], other);
      console.log(`reshard: moved ${JSON.stringify(report)} to the new primary, ${JSON.stringify(report2)} across`);
      await Bun.sleep(1500);
    } finally {
      console.log(`reshard: stopping the publishers (${load.acked.length} acked, ${load.refusals.length} refusals)`);
      await load.stop();
    }
    for (const server of nodes) {
      if (server.proc.exitCode !== null || server.proc.signalCode !== null) {
        throw new Error(`${server.url} exited (${server.proc.exitCode ?? server.proc.signalCode}): ${server.logs().trim().split("\n").slice(-15).join("\n")}`);
      }
    }
    for (const s of spread.filter((_, i) => i % 2 === 0)) expect(await redis.primaryOf(`sb:{${s.topic}}:ch`)).toBe(fresh);
    // Live after the move: a publication now reaches every socket without a resubscribe.
    for (const topic of topics) {
      const reply = await apiPublish(nodes[0]!, { topic, data: "reshard-end" });
      expect(reply.status).toBe(202);
      load.acked.push({ topic, seq: reply.body.seq, epoch: reply.body.epoch, data: "reshard-end", key: `end-${topic}` });
    }
    for (const s of subscribers) {
      for (const topic of topics) {
        await s.next((f) => f.type === "message" && f.topic === topic && f.data === "reshard-end", 5000, `${topic}'s publication after the move`);
        checkDelivery(s.frames.filter((f) => (f.type === "message" || f.type === "resync") && f.topic === topic), load.acked.filter((a) => a.topic === topic));
      }
    }
    checkAcks(load.acked);
    for (const topic of topics) await checkHistory(topic, load.acked);
    const late = outsideWindows(load.refusals, windows);
    console.log(`reshard: ${load.acked.length} acked, ${load.refusals.length} refusals (${late.length} outside the migrations); windows ${JSON.stringify(windows.map((w) => w.end - w.start))} ms`);
    expect(late).toEqual([]);
    for (const server of nodes) expect(server.faults()).toEqual([]);
    await closeAll([...subscribers, ...publishersWs]);
  }, 120_000);
});

describe("Redis Cluster live resharding: the revocation keys", () => {
  test("every revocation shard and the users' key migrated while batches of handshake checks run and sessions are revoked: a revoked session is never answered 'not revoked'", async () => {
    const data = createClusterConnection(redis.url, { name: "rs-data" });
    // As the server opens its auth-reads connection on a cluster (redis/services.ts).
    const reads = createClusterConnection(redis.url, { name: "rs-auth-reads", commandTimeoutMs: COMMAND_TIMEOUT_MS, autoPipelining: true });
    try {
      await Promise.all([connectWithin(data, 5000), connectWithin(reads, 5000)]);
      const stores = redisStores(data, new RevocationReader(reads, COMMAND_TIMEOUT_MS));
      const tag = Math.random().toString(36).slice(2, 8);
      const sids = Array.from({ length: 200 }, (_, i) => `rs-${tag}-${i}`);
      const revoked = new Set(sids.slice(0, 40));
      for (const sid of revoked) await stores.revocations.revoke(sid, 120);
      const iatS = Math.floor(Date.now() / 1000) - 60;
      const slots = [...new Set([...Array.from({ length: 16 }, (_, n) => `sb:revocations:{${n}}`), storeKeys.revokedUsers].map((k) => redis.slotOf(k)))];
      // Every slot to one primary (those it owns already stay): the one that owns the users' key does not.
      const usersOwner = await redis.primaryOf(storeKeys.revokedUsers);
      const to = (await redis.primaries()).find((p) => p !== usersOwner)!;
      const wrong: string[] = [];
      let unavailable = 0;
      let checks = 0;
      const start = Date.now();
      let migrating = true;
      const migration = redis.migrateSlots(slots, to, { pauseMs: 50, batch: 10 }).finally(() => (migrating = false));
      let next = 40;
      while (migrating) {
        // A logout that answered: refused from now on.
        if (next < 120) {
          const sid = sids[next++]!;
          await stores.revocations.revoke(sid, 120).then(() => revoked.add(sid), () => {});
        }
        const answers = await Promise.all(
          sids.map((sid) => stores.credentialRevocations.revokedBy(sid, `user-${tag}`, iatS).then((a) => ({ sid, a: a as string | null }), (e: Error) => ({ sid, a: e.message.includes("navailable") ? "unavailable" : `error ${e.message}` }))),
        );
        for (const { sid, a } of answers) {
          checks++;
          if (a === "unavailable") unavailable++;
          else if (a !== (revoked.has(sid) ? "session" : null)) wrong.push(`${sid}: ${a} (revoked: ${revoked.has(sid)})`);
        }
      }
      const report = await migration;
      const after = await Promise.all(sids.map((sid) => stores.credentialRevocations.revokedBy(sid, `user-${tag}`, iatS)));
      console.log(`revocations: ${JSON.stringify(report)} to ${to} in ${Date.now() - start} ms; ${checks} checks, ${unavailable} unavailable, ${wrong.length} wrong`);
      expect(wrong.slice(0, 10)).toEqual([]);
      expect(after.map((a, i) => `${sids[i]}: ${a}`)).toEqual(sids.map((sid) => `${sid}: ${revoked.has(sid) ? "session" : null}`));
    } finally {
      await Promise.all([data, reads].map(closeConnection));
    }
  }, 60_000);
});

describe("Redis Cluster live resharding: presence", () => {
  test("a topic's presence keys and the presence leases migrated while members join and leave: every process lists the members left", async () => {
    const topic = `room:presence-${Math.random().toString(36).slice(2, 8)}`;
    const sessions = await Promise.all(["alice", "bob", "carol"].map((user) => loginSession(nodes[0]!, user)));
    const join = async (i: number, server: TestServer) => {
      const client = await connectAsTheSdkDoes(server.wsUrl, sessions[i]!.cookie);
      clients.add(client);
      await subscribe(client, topic);
      return client;
    };
    const alice = await join(0, nodes[0]!);
    const bob = await join(1, nodes[1]!);
    const slots = [...new Set([`sb:{p:${topic}}:conns`, "sb:{presence}:instances"].map((k) => redis.slotOf(k)))];
    const owner = await redis.primaryOf(`sb:{p:${topic}}:conns`);
    const to = (await redis.primaries()).find((p) => p !== owner)!;
    const migration = redis.migrateSlots(slots, to, { pauseMs: 300, batch: 1 });
    // During the move: carol joins on a third process, bob leaves, alice opens a second socket.
    const carol = await join(2, nodes[2]!);
    await bob.closeAndWait();
    const alice2 = await join(0, nodes[2]!);
    const report = await migration;
    const expected = [{ name: "alice", connections: 2 }, { name: "carol", connections: 1 }];
    for (const server of nodes) {
      const client = await join(2, server);
      const deadline = Date.now() + 3000;
      let members: { name: string; connections: number }[] = [];
      for (;;) {
        const reply = await client.request({ type: "presence", topic });
        members = (reply.members as { user: { name: string }; connections: number }[]).map((m) => ({ name: m.user.name, connections: m.connections })).sort((a, b) => a.name.localeCompare(b.name));
        // This socket counts one more carol.
        if (JSON.stringify(members) === JSON.stringify([expected[0], { name: "carol", connections: 2 }]) || Date.now() > deadline) break;
        await Bun.sleep(100);
      }
      expect({ server: server.url, members }).toEqual({ server: server.url, members: [expected[0]!, { name: "carol", connections: 2 }] });
      await client.closeAndWait();
    }
    console.log(`presence: ${JSON.stringify(report)} to ${to}`);
    for (const server of nodes) expect(server.faults()).toEqual([]);
    await closeAll([alice, alice2, carol]);
  }, 60_000);
});

describe("Redis Cluster live resharding: the webhook outbox", () => {
  test("every outbox shard migrated while publications on a webhook namespace are acked: each one is sent as message.published, in order per topic", async () => {
    const receiver = startReceiver();
    // One answer in three a 503 until the migration is over: events stay in the streams (retried) while their slots move.
    let flaky = true;
    receiver.answer = () => (flaky && Math.random() < 0.33 ? 503 : 200);
    const env = { ...CLUSTER_ENV, REDIS_CLUSTER: "true", REDIS_URL: redis.url, WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: "reshard-webhook-secret-0123456789abcdef", WEBHOOK_RETRY_BASE_MS: "100", NAMESPACES: JSON.stringify({ chat: { subscribe: "any", publish: "any", webhook: true } }) };
    const senders = await Promise.all(["wh-a", "wh-b"].map((name) => startServer({ ...env, INSTANCE_ID: name })));
    // In service (/readyz) before the first publish, as behind a load balancer: before it, the data
    // connection the outbox writes through may still be opening, and an event it cannot store is
    // counted as failed, not retried (docs/protocol.md), though the publish is acked.
    await Promise.all(senders.map((server) => inService(server)));
    try {
      const topics = Array.from({ length: 8 }, (_, i) => `chat:wh-${i}`);
      const acked: { topic: string; seq: number; epoch: string }[] = [];
      let running = true;
      const load = topics.map(async (topic, t) => {
        for (let i = 0; running; i++) {
          const reply = await apiPublish(senders[i % 2]!, { topic, data: i, key: `wh-${t}-${i}` }).catch(() => ({ status: 0, body: null }));
          if (reply.status === 202) acked.push({ topic, seq: reply.body.seq, epoch: reply.body.epoch });
          await Bun.sleep(reply.status === 202 ? 20 : 100);
        }
      });
      const slots = [...new Set(Array.from({ length: 16 }, (_, n) => redis.slotOf(`sb:{wh:${n}}:events`)))];
      // To the primary that owns the fewest of them: most move.
      const owners = await Promise.all(Array.from({ length: 16 }, (_, n) => redis.primaryOf(`sb:{wh:${n}}:events`)));
      const to = (await redis.primaries()).sort((a, b) => owners.filter((p) => p === a).length - owners.filter((p) => p === b).length)[0]!;
      await Bun.sleep(300);
      const report = await redis.migrateSlots(slots, to, { pauseMs: 100, batch: 10 });
      flaky = false;
      await Bun.sleep(300);
      running = false;
      await Promise.all(load);
      const sent = () => receiver.delivered().filter((r) => r.event.type === "message.published");
      const key = (e: { topic: string; seq: number; epoch: string }) => `${e.topic} ${e.epoch}:${e.seq}`;
      const deadline = Date.now() + 15_000;
      while (acked.some((a) => !sent().some((r) => key(r.event.data) === key(a))) && Date.now() < deadline) await Bun.sleep(100);
      const missing = acked.filter((a) => !sent().some((r) => key(r.event.data) === key(a)));
      console.log(`outbox: ${JSON.stringify(report)} to ${to}; ${acked.length} acked, ${sent().length} sent, ${missing.length} missing`);
      expect(missing.map(key)).toEqual([]);
      // In order per topic (first delivery of each event).
      for (const topic of topics) {
        const firsts = [...new Map(sent().filter((r) => r.event.data.topic === topic).map((r) => [r.event.id, r.event.data as { seq: number; epoch: string }])).values()];
        const epochs = firsts.map((d) => d.epoch);
        for (let i = 1; i < firsts.length; i++) if (epochs[i] === epochs[i - 1]) expect(firsts[i]!.seq).toBeGreaterThan(firsts[i - 1]!.seq);
      }
      for (const server of senders) expect(server.faults()).toEqual([]);
    } finally {
      for (const server of senders) server.kill();
      await receiver.stop();
    }
  }, 60_000);
});
