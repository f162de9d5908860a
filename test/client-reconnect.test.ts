/**
 * The SDK across server restarts (SPEC close code 1012, "Delivery"): a client whose machine
 * drains reconnects promptly to another one, resubscribes with `since`, and receives what was
 * published in between exactly once; when the history is gone, it is told to reload
 * (`recovered:false` → onResync) instead of silently skipping.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { SwitchboardClient } from "../src/client/index.ts";
import { startProxy, type TcpProxy } from "./support/proxy.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";
import { range, recordedClient, waitFor } from "./support/sdk.ts";
import { apiPublish, getToken, startServer, type TestServer } from "./support/server.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
function track<T extends SwitchboardClient | TcpProxy | TestServer | TestRedis>(x: T): T {
  cleanup.push(() => ("kill" in x ? x.kill() : x.close()));
  return x;
}

describe("1012: the server restarts", () => {
  test("the client reconnects within the restart jitter to another machine and gets what it missed exactly once", async () => {
    const redis = track(await startRedis());
    const env = { REDIS_URL: redis.url, DRAIN_MS: "100" };
    const [a, b] = await Promise.all([
      startServer({ ...env, INSTANCE_ID: "machine-a" }),
      startServer({ ...env, INSTANCE_ID: "machine-b" }),
    ]);
    track(a!);
    track(b!);
    const proxy = track(await startProxy({ upstreams: [a!.port, b!.port] }));
    const topic = "room:sdk-restart";
    // random() = 0.5: the 1012 reconnect waits exactly half of restartJitterMs (400 ms), long
    // enough to publish "in between" deterministically.
    const r = recordedClient({
      url: proxy.url("/ws"),
      // Tokens come through the proxy too: any machine of the deployment can issue one.
      getToken: () => getToken({ ...a!, url: proxy.url("", "http") }, "alice"),
      reconnect: { baseMs: 50, capMs: 400, restartJitterMs: 800, overloadedMinMs: 200 },
      random: () => 0.5,
    });
    track(r.client);
    await r.client.subscribe(topic, r.handlers(topic));
    const first = r.client.welcome!.instance;
    const [doomed, survivor] = first === "machine-a" ? [a!, b!] : [b!, a!];
    for (let i = 0; i < 3; i++) expect((await apiPublish(survivor, { topic, data: i })).status).toBe(202);
    await waitFor(() => r.seqs(topic).length === 3, 3000, "first three");

    const stopping = doomed.stop("SIGTERM");
    await waitFor(() => r.count("closed") === 1, 3000, "the 1012 close");
    const closedAt = r.events.findLast((e) => e.name === "closed")!.at;
    for (let i = 3; i < 8; i++) expect((await apiPublish(survivor, { topic, data: i })).status).toBe(202);
    expect(r.client.state).not.toBe("open"); // these five were published while it was away
    expect(await stopping).toBe(0);

    await waitFor(() => r.seqs(topic).length >= 8, 5000, "the missed five");
    await Bun.sleep(200);
    expect(r.last("closed")).toMatchObject({ code: 1012, reconnect: true });
    // The reconnect that answers the 1012 (on a loaded machine the first connect may have needed a
    // retry of its own); every event in the diff when it is not what the 1012 asks for.
    const restart = r.events.findIndex((e) => e.name === "closed" && (e.payload as { code?: number }).code === 1012);
    const events = r.events.map((e) => ({ name: e.name, payload: e.payload }));
    const early = events.slice(0, restart).filter((e) => e.name === "closed" || e.name === "error");
    if (early.length > 0) console.log(`before the 1012: ${JSON.stringify(early)}`);
    expect({ reconnecting: events.slice(restart).find((e) => e.name === "reconnecting")?.payload, events }).toMatchObject({ reconnecting: { delay: 400, code: 1012 } });
    const reopenedAt = r.events.findLast((e) => e.name === "open")!.at;
    console.log(`1012 → open again after ${(reopenedAt - closedAt).toFixed(0)} ms`);
    expect(reopenedAt - closedAt).toBeLessThan(3000); // 400 ms delay + a token + an upgrade, on a busy machine
    expect(r.client.welcome!.instance).not.toBe(first);
    expect(r.seqs(topic)).toEqual(range(1, 8));
    expect(r.messages.get(topic)!.map((m) => m.data)).toEqual(range(0, 8));
    expect(r.recovered).toEqual([{ topic, recovered: true }]);
    expect(r.resyncs).toEqual([]);
  }, 20_000);

  test("when the history did not survive (one in-memory process restarted), the subscription is told to reload", async () => {
    const first = await startServer({ DRAIN_MS: "100" });
    track(first);
    const topic = "room:sdk-amnesia";
    const r = recordedClient({ url: first.wsUrl, getToken: () => getToken(first, "alice") });
    track(r.client);
    await r.client.subscribe(topic, r.handlers(topic));
    await apiPublish(first, { topic, data: "before" });
    await waitFor(() => r.seqs(topic).length === 1, 3000, "first message");
    const oldEpoch = r.messages.get(topic)![0]!.epoch;

    expect(await first.stop("SIGTERM")).toBe(0);
    const second = track(await startServer({ PORT: String(first.port) }));
    await waitFor(() => r.resyncs.length === 1, 8000, "resync");
    expect(r.recovered).toEqual([{ topic, recovered: false }]);
    expect(r.resyncs[0]).toMatchObject({ topic, reason: "not_recovered", seq: 0 });
    expect(r.resyncs[0]!.epoch).not.toBe(oldEpoch);
    expect(r.events.some((e) => e.name === "resync")).toBe(true);

    // Live traffic of the new epoch flows on after the resync position.
    await apiPublish(second, { topic, data: "after" });
    await waitFor(() => r.seqs(topic).length === 2, 3000, "message of the new epoch");
    expect(r.messages.get(topic)![1]).toMatchObject({ seq: 1, data: "after", epoch: r.resyncs[0]!.epoch });
  }, 20_000);
});
