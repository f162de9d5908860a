/**
 * The SDK's share of SPEC §4 (identity from the application): `getToken` before every
 * first-message-auth connection, again on the server's `expiring` frame — answered in-band with
 * `refresh` on the same socket, subscriptions untouched — and again after a 4001 before
 * reconnecting. Driven against a scripted server (a real Bun.serve speaking those frames, since
 * the server side of §4 is built separately); the real server's 4001 at a token's expiry is in
 * test/client.test.ts.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { SwitchboardClientError, type ClientOptions, type TokenRequest } from "../src/client/index.ts";
import { scriptedServer, type Script, type ScriptedServer } from "./support/scripted-server.ts";
import { recordedClient, waitFor, type Recorder } from "./support/sdk.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function serve(script: Script = {}): ScriptedServer {
  const s = scriptedServer({ firstMessageAuth: true, ...script });
  cleanup.push(() => s.stop());
  return s;
}

/** A getToken that hands out token-1, token-2, … and records why it was asked. */
function tokens(fail?: (request: TokenRequest, n: number) => Error | undefined) {
  const asked: string[] = [];
  return {
    asked,
    getToken: async (request: TokenRequest) => {
      asked.push(request.reason);
      const error = fail?.(request, asked.length);
      if (error) throw error;
      return `token-${asked.length}`;
    },
  };
}

function client(url: string, options: Partial<ClientOptions>): Recorder {
  const r = recordedClient({ url, random: () => 0.5, reconnect: { baseMs: 20, capMs: 200, restartJitterMs: 50, overloadedMinMs: 50, stableMs: 1000 }, ...options });
  for (const name of ["expiring", "refreshed", "disconnected"] as const) {
    r.client.on(name, (payload) => r.events.push({ at: 0, name, payload }));
  }
  cleanup.push(() => r.client.close());
  return r;
}

const inSeconds = (s: number) => Math.floor(Date.now() / 1000) + s;

describe("expiring → refresh → ack, on the same socket", () => {
  test("getToken is asked again and the token sent as refresh; subscriptions are neither dropped nor re-sent", async () => {
    const server = serve();
    const t = tokens();
    const r = client(server.url, { getToken: t.getToken });
    await r.client.subscribe("room:a", r.handlers("room:a"));
    const peer = server.peers[0]!;
    expect(peer.frames[0]).toEqual({ type: "auth", token: "token-1" });
    server.publish("room:a", "before");
    await waitFor(() => r.seqs("room:a").length === 1, 2000, "first message");

    const expiresAt = inSeconds(30);
    peer.send({ type: "expiring", expiresAt });
    const refresh = await peer.waitFrame((f) => f.type === "refresh");
    expect(refresh).toEqual({ type: "refresh", token: "token-2", ref: refresh.ref });
    expect(t.asked).toEqual(["connect", "expiring"]);
    // While the refresh waits for its ack, traffic goes on both ways.
    server.publish("room:a", "during");
    const published = r.client.publish("room:a", "mine");
    await waitFor(() => r.seqs("room:a").length === 3, 2000, "messages during the refresh");
    expect((await published).seq).toBe(3);
    const renewedUntil = inSeconds(300);
    peer.send({ type: "ack", ref: refresh.ref, expiresAt: renewedUntil });
    await waitFor(() => r.count("refreshed") === 1, 2000, "refreshed");

    expect(r.last("expiring")).toEqual({ expiresAt });
    expect(r.last("refreshed")).toEqual({ expiresAt: renewedUntil });
    expect(peer.frames.filter((f) => f.type === "subscribe").length).toBe(1);
    expect(peer.frames.filter((f) => f.type === "unsubscribe").length).toBe(0);
    expect(server.peers.length).toBe(1);
    expect(r.count("closed")).toBe(0);
    expect(r.messages.get("room:a")!.map((m) => m.data)).toEqual(["before", "during", "mine"]);
    expect(r.client.topics).toEqual(["room:a"]);
  });

  test("a failing getToken is an error event and is retried while the credential is valid; the socket stays", async () => {
    const server = serve();
    const t = tokens((req, n) => (req.reason === "expiring" && n === 2 ? new Error("identity provider down") : undefined));
    const r = client(server.url, { getToken: t.getToken });
    await waitFor(() => r.client.state === "open", 2000, "open");
    const peer = server.peers[0]!;
    peer.send({ type: "expiring", expiresAt: inSeconds(20) });
    const refresh = await peer.waitFrame((f) => f.type === "refresh");
    expect(t.asked).toEqual(["connect", "expiring", "expiring"]);
    expect(refresh.token).toBe("token-3");
    const error = r.last("error") as SwitchboardClientError;
    expect(error).toBeInstanceOf(SwitchboardClientError);
    expect(error.code).toBe("unavailable");
    expect(error.message).toBe("could not refresh the token: identity provider down");
    peer.send({ type: "ack", ref: refresh.ref, expiresAt: inSeconds(300) });
    await waitFor(() => r.count("refreshed") === 1, 2000, "refreshed");
    expect(r.count("closed")).toBe(0);
  });

  test("a getToken that never answers the refresh times out (requestTimeoutMs) and is asked again; the socket stays", async () => {
    const server = serve();
    const asked: string[] = [];
    const r = client(server.url, {
      requestTimeoutMs: 200,
      getToken: ({ reason }) => {
        asked.push(reason);
        // The first refresh hangs (a fetch on a bad network); the next one answers.
        return asked.length === 2 ? new Promise<string>(() => {}) : Promise.resolve(`token-${asked.length}`);
      },
    });
    await waitFor(() => r.client.state === "open", 2000, "open");
    const peer = server.peers[0]!;
    peer.send({ type: "expiring", expiresAt: inSeconds(20) });
    const refresh = await peer.waitFrame((f) => f.type === "refresh");
    expect(refresh.token).toBe("token-3");
    expect(asked).toEqual(["connect", "expiring", "expiring"]);
    const error = r.last("error") as SwitchboardClientError;
    expect([error.code, error.message]).toEqual(["timeout", "getToken did not answer within 200 ms"]);
    peer.send({ type: "ack", ref: refresh.ref, expiresAt: inSeconds(300) });
    await waitFor(() => r.count("refreshed") === 1, 2000, "refreshed");
    expect(r.count("closed")).toBe(0);
  });

  test("a refresh refused by the server is an error event; a temporary refusal is retried with a fresh token", async () => {
    const server = serve({
      onFrame(peer, f) {
        if (f.type !== "refresh") return;
        const refusals = peer.frames.filter((x) => x.type === "refresh").length;
        if (refusals === 1) peer.send({ type: "error", ref: f.ref, code: "unavailable", message: "try again" });
        else peer.send({ type: "ack", ref: f.ref, expiresAt: inSeconds(300) });
        return true;
      },
    });
    const t = tokens();
    const r = client(server.url, { getToken: t.getToken });
    await waitFor(() => r.client.state === "open", 2000, "open");
    server.peers[0]!.send({ type: "expiring", expiresAt: inSeconds(20) });
    await waitFor(() => r.count("refreshed") === 1, 3000, "refreshed after a retry");
    expect(server.peers[0]!.frames.filter((f) => f.type === "refresh").map((f) => f.token)).toEqual(["token-2", "token-3"]);
    expect((r.last("error") as SwitchboardClientError).code).toBe("unavailable");
  });

  test("a refresh under way when the socket drops is abandoned: the next socket authenticates with its own token", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const asked: string[] = [];
    const server = serve();
    const r = client(server.url, {
      getToken: async ({ reason }) => {
        asked.push(reason);
        if (reason === "expiring") await gate;
        return `token-${asked.length}`;
      },
    });
    await waitFor(() => r.client.state === "open", 2000, "open");
    server.peers[0]!.send({ type: "expiring", expiresAt: inSeconds(20) });
    await waitFor(() => asked.length === 2, 2000, "the refresh's getToken");
    server.peers[0]!.close(1011, "gone");
    const second = await server.waitPeers(2);
    await second.waitFrame((f) => f.type === "auth");
    release();
    await Bun.sleep(100);
    expect(second.frames[0]).toEqual({ type: "auth", token: "token-3" });
    expect(asked).toEqual(["connect", "expiring", "connect"]);
    expect(server.peers.flatMap((p) => p.frames).some((f) => f.type === "refresh")).toBe(false);
  });

  test("without getToken (cookie or ticket), expiring is only an event: nothing is sent", async () => {
    const server = serve({ firstMessageAuth: false });
    const r = client(server.url, {});
    await waitFor(() => r.client.state === "open", 2000, "open");
    server.peers[0]!.send({ type: "expiring", expiresAt: inSeconds(20) });
    await waitFor(() => r.count("expiring") === 1, 2000, "expiring");
    await Bun.sleep(100);
    expect(server.peers[0]!.frames.filter((f) => f.type !== "ping")).toEqual([]);
  });
});

describe("refreshWith(token): a new credential now, on the same socket", () => {
  test("sends refresh with the token and resolves with the ack's expiry; the socket and its subscriptions stay", async () => {
    const until = inSeconds(600);
    const server = serve({
      firstMessageAuth: false,
      onFrame(peer, f) {
        if (f.type !== "refresh") return;
        if (f.token === "bad") peer.send({ type: "error", ref: f.ref, code: "unauthorized", message: "invalid token" });
        else peer.send({ type: "ack", ref: f.ref, expiresAt: until });
        return true;
      },
    });
    const r = client(server.url, {});
    await r.client.subscribe("room:a", r.handlers("room:a"));
    expect(await r.client.refreshWith("with-new-caps")).toBe(until);
    const peer = server.peers[0]!;
    expect(peer.frames.find((f) => f.type === "refresh")).toMatchObject({ type: "refresh", token: "with-new-caps" });
    const refused = await r.client.refreshWith("bad").catch((e: SwitchboardClientError) => e);
    expect((refused as SwitchboardClientError).code).toBe("unauthorized");
    expect(server.peers.length).toBe(1);
    expect(peer.frames.filter((f) => f.type === "subscribe").length).toBe(1);
    expect(r.client.state).toBe("open");
  });

  test("not connected: rejects with closed and sends nothing", async () => {
    const server = serve({ firstMessageAuth: false });
    const r = client(server.url, { autoConnect: false });
    const refused = await r.client.refreshWith("token").catch((e: SwitchboardClientError) => e);
    expect((refused as SwitchboardClientError).code).toBe("closed");
    expect(server.peers.length).toBe(0);
  });
});

describe("4001 with getToken: re-authenticate, never retry blindly", () => {
  test("after a 4001 on a working socket getToken is asked with reason unauthorized before reconnecting; subscriptions resume with since", async () => {
    const server = serve();
    const t = tokens();
    const r = client(server.url, { getToken: t.getToken });
    await r.client.subscribe("room:a", r.handlers("room:a"));
    server.publish("room:a", 1);
    await waitFor(() => r.seqs("room:a").length === 1, 2000, "first message");
    server.peers[0]!.close(4001, "token expired");
    const second = await server.waitPeers(2);
    const resub = await second.waitFrame((f) => f.type === "subscribe");
    expect(second.frames[0]).toEqual({ type: "auth", token: "token-2" });
    expect(t.asked).toEqual(["connect", "unauthorized"]);
    expect(resub.since).toEqual({ seq: 1, epoch: "e1" });
    expect(r.last("closed")).toEqual({ code: 4001, reason: "token expired", reconnect: true });
    expect(r.last("reconnecting")).toMatchObject({ delay: 0, code: 4001 });
    expect(r.count("unauthorized")).toBe(0);
  });

  test("a fresh token refused too stops: unauthorized, and the client stays closed", async () => {
    const server = serve({
      onFrame(peer, f) {
        if (f.type === "auth" && peer.index > 0) return peer.close(4001, "invalid token"), true;
      },
    });
    const t = tokens();
    const r = client(server.url, { getToken: t.getToken });
    await waitFor(() => r.client.state === "open", 2000, "open");
    server.peers[0]!.close(4001, "token expired");
    await waitFor(() => r.count("unauthorized") === 1, 2000, "unauthorized");
    const pending = await r.client.publish("room:a", 1).catch((e: SwitchboardClientError) => e.code);
    expect(pending).toBe("closed");
    expect(t.asked).toEqual(["connect", "unauthorized"]);
    expect(r.last("unauthorized")).toEqual({ code: 4001, reason: "invalid token" });
    expect(r.client.state).toBe("closed");
    await Bun.sleep(200);
    expect(server.peers.length).toBe(2);
  });

  test("getToken rejecting with code unauthorized stops at once, also when asked after a 4001", async () => {
    const server = serve();
    const t = tokens((req) => (req.reason === "unauthorized" ? new SwitchboardClientError("unauthorized", "signed out") : undefined));
    const r = client(server.url, { getToken: t.getToken });
    await waitFor(() => r.client.state === "open", 2000, "open");
    server.peers[0]!.close(4001, "revoked");
    await waitFor(() => r.count("unauthorized") === 1, 2000, "unauthorized");
    expect(t.asked).toEqual(["connect", "unauthorized"]);
    expect((r.last("error") as SwitchboardClientError).message).toBe("signed out");
    expect(server.peers.length).toBe(1);
    expect(r.client.state).toBe("closed");
  });

  test("connect() after unauthorized starts again: getToken is asked with reason connect", async () => {
    const server = serve();
    const t = tokens((_req, n) => (n === 2 ? new SwitchboardClientError("unauthorized", "signed out") : undefined));
    const r = client(server.url, { getToken: t.getToken });
    await waitFor(() => r.client.state === "open", 2000, "open");
    server.peers[0]!.close(4001, "revoked");
    await waitFor(() => r.count("unauthorized") === 1, 2000, "unauthorized");
    r.client.connect();
    await waitFor(() => r.count("open") === 2, 2000, "open again");
    expect(t.asked).toEqual(["connect", "unauthorized", "connect"]);
  });
});
