/**
 * The SDK against the real server's SPEC §4 (identity from the application): an app token from
 * `getToken` authenticates the first frame, the server's `expiring` is answered in-band with a
 * fresh token — same socket, same subscriptions — and a token the app cannot refresh ends in a
 * 4001 after which the SDK asks `getToken` again and resumes with `since`.
 * (The same flows frame by frame, against a scripted server: test/client-refresh.test.ts.)
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { SwitchboardClient, TokenRequest } from "../src/client/index.ts";
import { signHsToken } from "./support/jwks.ts";
import { recordedClient, waitFor, type Recorder } from "./support/sdk.ts";
import { apiPublish, killAllServers, startServer, type TestServer } from "./support/server.ts";

const SECRET = "app-jwt-secret-for-the-sdk-0123456789abcdef";
let server: TestServer;
const cleanup: (() => unknown)[] = [];

beforeAll(async () => {
  server = await startServer({ AUTH_JWT_SECRET: SECRET });
}, 20_000);
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
afterAll(() => {
  server?.kill();
  killAllServers();
});

let topicCounter = 0;
const room = () => `room:sdk-identity-${Date.now().toString(36)}-${topicCounter++}`;

/** An app's getToken: HS256 tokens for `sub` living `lifetimeS`, recording why each was asked. */
function appTokens(sub: string, lifetimeS: number, refuse: (request: TokenRequest) => boolean = () => false) {
  const asked: string[] = [];
  return {
    asked,
    getToken: async (request: TokenRequest) => {
      asked.push(request.reason);
      if (refuse(request)) throw new Error("the app cannot refresh now");
      return signHsToken(SECRET, { sub, expiresIn: lifetimeS, claims: { name: sub } });
    },
  };
}

/**
 * Runs `body` with a recording SDK client and closes the client after it. Each test closes its own
 * (not the file's afterEach): the two tests below wait out their tokens' lifetimes side by side
 * (test.concurrent), and an afterEach runs as soon as either ends.
 */
async function withClient(getToken: (request: TokenRequest) => Promise<string>, body: (r: Recorder) => Promise<void>): Promise<void> {
  const r = recordedClient({ url: server.wsUrl, getToken });
  for (const name of ["expiring", "refreshed"] as const) r.client.on(name, (payload) => r.events.push({ at: 0, name, payload }));
  try {
    await body(r);
  } finally {
    (r.client as SwitchboardClient).close();
  }
}

describe("SPEC §4 with the SDK: expiring → getToken → refresh, same socket", () => {
  test.concurrent("a 7 s app token is refreshed in-band before its end: no close, the subscription keeps receiving", async () => {
    const topic = room();
    const t = appTokens("app|rita", 7);
    await withClient(t.getToken, async (r) => {
      await r.client.subscribe(topic, r.handlers(topic));
      const connectionId = r.client.welcome!.connectionId;
      expect(r.client.welcome!.user).toEqual({ id: "app|rita", name: "app|rita" });

      await waitFor(() => r.count("refreshed") === 1, 8000, "the refresh");
      expect(t.asked).toEqual(["connect", "expiring"]);
      const expiring = r.last("expiring") as { expiresAt: number };
      const refreshed = r.last("refreshed") as { expiresAt: number };
      expect(refreshed.expiresAt).toBeGreaterThan(expiring.expiresAt);

      await Bun.sleep(Math.max(0, expiring.expiresAt * 1000 + 2500 - Date.now())); // past the first token's end
      expect((await apiPublish(server, { topic, data: "after the first token's end" })).status).toBe(202);
      await waitFor(() => r.seqs(topic).length === 1, 3000, "a message on the refreshed socket");
      expect(r.count("closed")).toBe(0);
      expect(r.count("open")).toBe(1);
      expect(r.client.welcome!.connectionId).toBe(connectionId);
    });
  }, 20_000);

  test.concurrent("an app that cannot refresh: 4001 at the expiry, getToken asked with reason unauthorized, resumed with since", async () => {
    const topic = room();
    const t = appTokens("app|sam", 7, (req) => req.reason === "expiring");
    await withClient(t.getToken, async (r) => {
      await r.client.subscribe(topic, r.handlers(topic));
      expect((await apiPublish(server, { topic, data: "before" })).status).toBe(202);
      await waitFor(() => r.count("closed") === 1, 12_000, "the 4001 at the expiry");
      expect(r.last("closed")).toMatchObject({ code: 4001, reconnect: true });
      expect(r.events.some((e) => e.name === "error")).toBe(true); // the failed refresh was reported
      expect((await apiPublish(server, { topic, data: "while away" })).status).toBe(202);
      await waitFor(() => r.count("open") === 2, 5000, "reopened with a fresh token");
      await waitFor(() => r.seqs(topic).length === 2, 3000, "the missed message");
      expect(t.asked[0]).toBe("connect");
      expect(t.asked.at(-1)).toBe("unauthorized");
      expect(r.messages.get(topic)!.map((m) => m.data)).toEqual(["before", "while away"]);
      expect(r.recovered).toEqual([{ topic, recovered: true }]);
      expect(r.count("unauthorized")).toBe(0);
    });
  }, 25_000);
});

describe("SPEC §5 caps with the SDK: a reconnect without the history action", () => {
  test("a socket whose caps lack history resubscribes without since after a lost link: the subscription goes on, reported not recovered", async () => {
    const topic = room();
    const sockets: WebSocket[] = [];
    const r = recordedClient({
      url: server.wsUrl,
      getToken: async () => signHsToken(SECRET, { sub: "app|noah", expiresIn: 600, claims: { name: "noah", caps: { "room:*": ["subscribe", "publish"] } } }),
      createWebSocket: (url) => {
        const ws = new WebSocket(url);
        sockets.push(ws);
        return ws;
      },
    });
    cleanup.push(() => r.client.close());
    const errors: unknown[] = [];
    await r.client.subscribe(topic, { ...r.handlers(topic), onError: (e) => errors.push(e) });
    await apiPublish(server, { topic, data: "before" });
    await waitFor(() => (r.messages.get(topic) ?? []).length === 1, 3000, "the first message");
    sockets.at(-1)!.close(4000, "test: the link is lost");
    await waitFor(() => sockets.length === 2 && r.count("open") >= 2, 5000, "a new connection");
    await apiPublish(server, { topic, data: "missed?" });
    await apiPublish(server, { topic, data: "after" });
    await waitFor(() => (r.messages.get(topic) ?? []).some((m) => m.data === "after"), 5000, "a message after the reconnect");
    expect(r.resyncs.map((x) => x.reason)).toContain("not_recovered");
    expect(errors).toEqual([]);
    expect(r.count("error")).toBe(0);
  });
});
