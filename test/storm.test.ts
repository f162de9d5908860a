/**
 * Reconnect storm (issue 17; SPEC "Delivery": a client that reconnects with `since` gets what it
 * missed, `recovered:true`). 300 SDK clients on process A, subscribed to 20 topics; A is killed
 * with SIGKILL; the clients reconnect to B as the SDK does (jittered) while the topics go on
 * publishing, and resume with `since`. Every one resumes with recovered:true and nothing lost,
 * and B reads each topic's history a bounded number of times for the whole storm, not once per
 * socket (switchboard_history_reads_total{reason="since"}).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { apiPublish, loginSession, type TestServer } from "./support/server.ts";
import { startCluster, type TestCluster } from "./support/cluster.ts";
import { recordedClient, waitFor, withCookie, range, type Recorder } from "./support/sdk.ts";
import { scrape } from "./support/metrics.ts";

const SOCKETS = 300;
const TOPICS = 20;
let cluster: TestCluster;
let A: TestServer, B: TestServer;
const clients: Recorder[] = [];

beforeAll(async () => {
  cluster = await startCluster(["storm-a", "storm-b"], { USERS: "alice:alice-password", RATE_LIMIT_PER_S: "1000" });
  [A, B] = cluster.nodes as [TestServer, TestServer];
}, 30_000);
afterAll(async () => {
  for (const r of clients) r.client.close();
  await cluster?.stop();
});

const topicOf = (i: number) => `room:storm-${i % TOPICS}`;
const publishEach = (server: TestServer, n: number) =>
  Promise.all(
    range(0, TOPICS).map(async (t) => {
      for (let k = 0; k < n; k++) expect((await apiPublish(server, { topic: topicOf(t), data: { k } })).status).toBe(202);
    }),
  );

describe("a reconnect storm after kill -9", () => {
  test("300 sockets on A move to B and all resume with recovered:true, nothing lost; B reads each topic's history a few times, not per socket", async () => {
    const { cookie } = await loginSession(A, "alice", "alice-password");
    let target = A.wsUrl;
    const open = withCookie(cookie);
    const subscribed: Promise<unknown>[] = [];
    for (let i = 0; i < SOCKETS; i++) {
      const r = recordedClient({ url: A.wsUrl, createWebSocket: () => open(target) });
      clients.push(r);
      subscribed.push(r.client.subscribe(topicOf(i), r.handlers(topicOf(i))));
    }
    await Promise.all(subscribed);
    await publishEach(A, 10);
    await waitFor(() => clients.every((r, i) => r.seqs(topicOf(i)).length === 10), 20_000, "10 messages per client");

    const before = await scrape(B);
    target = B.wsUrl;
    A.proc.kill("SIGKILL");
    await publishEach(B, 5); // published while the clients are away
    await waitFor(() => clients.every((r) => r.recovered.length === 1), 30_000, "every client resumed on B");
    await publishEach(B, 2); // and live after the resume
    await waitFor(() => clients.every((r, i) => r.seqs(topicOf(i)).length === 17), 20_000, "17 messages per client");

    for (const [i, r] of clients.entries()) {
      expect(r.recovered).toEqual([{ topic: topicOf(i), recovered: true }]);
      expect(r.seqs(topicOf(i))).toEqual(range(1, 17));
      expect(r.resyncs).toEqual([]);
    }
    const after = await scrape(B);
    const reads = after.delta(before, "switchboard_history_reads_total", { reason: "since" });
    expect(reads).toBeGreaterThan(0);
    expect(reads).toBeLessThanOrEqual(3 * TOPICS);
  }, 90_000);
});
