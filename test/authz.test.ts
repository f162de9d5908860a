/**
 * SPEC §5 `app`: the AUTHZ_URL client against a real HTTP server playing the app — answering,
 * refusing, slow, down, flapping. 200 `{allow, ttlS?}` decides and is cached; 403 is a cached
 * refusal; anything else is `unavailable` and not cached; identical questions share one request.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { AuthzClient } from "../src/auth/authz.ts";
import { verifySignature } from "../src/auth/signature.ts";
import { SwitchboardError } from "../src/protocol/codes.ts";
import { freePort } from "./support/server.ts";

const SECRET = "authz-secret-0123456789abcdef-0123456789";
const alice = { id: "alice", name: "Alice" };

type Handler = (body: { user: { id: string; name: string }; topic: string; action: string }, req: Request) => Response | Promise<Response>;

/** The app: every request is verified, recorded, and answered by the current handler. */
let handler: Handler = () => Response.json({ allow: true });
const requests: { body: { user: { id: string; name: string }; topic: string; action: string }; signatureOk: boolean }[] = [];
const app = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  idleTimeout: 30,
  async fetch(req) {
    const raw = await req.text();
    let signatureOk = true;
    try {
      verifySignature(raw, req.headers.get("switchboard-signature"), SECRET);
    } catch {
      signatureOk = false;
    }
    const body = JSON.parse(raw);
    requests.push({ body, signatureOk });
    return handler(body, req);
  },
});
const URL_ = `http://127.0.0.1:${app.port}/authz`;
afterAll(() => app.stop(true));
afterEach(() => {
  requests.length = 0;
  handler = () => Response.json({ allow: true });
});

/** A client whose clock the test moves (the cache's ttl is the only thing read from it). */
function client(extra: Partial<ConstructorParameters<typeof AuthzClient>[0]> = {}) {
  const clock = { now: 1_000_000 };
  const authz = new AuthzClient({ url: URL_, secret: SECRET, now: () => clock.now, ...extra });
  return { authz, clock };
}

async function outcome(p: Promise<boolean>): Promise<boolean | string> {
  try {
    return await p;
  } catch (error) {
    return error instanceof SwitchboardError ? error.code : `other: ${String(error)}`;
  }
}

describe("the question", () => {
  test("POST {user:{id,name}, topic, action}, JSON, signed with WEBHOOK_SECRET, asking for JSON", async () => {
    let contentType: string | null = null;
    let accept: string | null = null;
    handler = (_, req) => {
      contentType = req.headers.get("content-type");
      accept = req.headers.get("accept");
      return Response.json({ allow: true });
    };
    const { authz } = client();
    expect(await authz.allows(alice, "typing:doc-1", "publish")).toBe(true);
    expect(requests).toEqual([{ body: { user: alice, topic: "typing:doc-1", action: "publish" }, signatureOk: true }]);
    expect(contentType!).toBe("application/json");
    expect(accept!).toBe("application/json");
  });
});

describe("answers and the cache", () => {
  test("200 {allow} is cached per user, topic and action for 60 s by default", async () => {
    handler = (b) => Response.json({ allow: b.topic === "typing:a" });
    const { authz, clock } = client();
    expect(await authz.allows(alice, "typing:a", "subscribe")).toBe(true);
    expect(await authz.allows(alice, "typing:a", "subscribe")).toBe(true);
    expect(await authz.allows(alice, "typing:b", "subscribe")).toBe(false);
    expect(await authz.allows(alice, "typing:b", "subscribe")).toBe(false);
    expect(requests).toHaveLength(2);
    // Another action, another user: other questions.
    await authz.allows(alice, "typing:a", "publish");
    await authz.allows({ id: "bob", name: "Bob" }, "typing:a", "subscribe");
    expect(requests).toHaveLength(4);
    clock.now += 59_000;
    await authz.allows(alice, "typing:a", "subscribe");
    expect(requests).toHaveLength(4);
    clock.now += 2_000;
    await authz.allows(alice, "typing:a", "subscribe");
    expect(requests).toHaveLength(5);
  });

  test("ttlS sets the cache time, at most 3600; ttlS 0 is not cached", async () => {
    handler = (b) => Response.json({ allow: true, ttlS: b.topic === "t:short" ? 5.9 : b.topic === "t:long" ? 100_000 : 0 });
    const { authz, clock } = client();
    for (const topic of ["t:short", "t:long", "t:zero", "t:zero"]) await authz.allows(alice, topic, "subscribe");
    expect(requests).toHaveLength(4);
    clock.now += 6_000;
    await authz.allows(alice, "t:short", "subscribe");
    await authz.allows(alice, "t:long", "subscribe");
    expect(requests).toHaveLength(5);
    clock.now += 3_600_000;
    await authz.allows(alice, "t:long", "subscribe");
    expect(requests).toHaveLength(6);
  });

  test("ttlS: null is ttlS left out (60 s), as serializers that write absent fields as null send it", async () => {
    handler = () => new Response('{"allow":true,"ttlS":null}', { headers: { "content-type": "application/json" } });
    const { authz, clock } = client();
    expect(await outcome(authz.allows(alice, "t:null", "subscribe"))).toBe(true);
    clock.now += 59_000;
    expect(await outcome(authz.allows(alice, "t:null", "subscribe"))).toBe(true);
    expect(requests).toHaveLength(1);
  });

  test("403 is a refusal, cached 60 s", async () => {
    handler = () => new Response("no", { status: 403 });
    const { authz, clock } = client();
    expect(await authz.allows(alice, "typing:x", "publish")).toBe(false);
    expect(await authz.allows(alice, "typing:x", "publish")).toBe(false);
    expect(requests).toHaveLength(1);
    clock.now += 60_001;
    expect(await authz.allows(alice, "typing:x", "publish")).toBe(false);
    expect(requests).toHaveLength(2);
  });

  test("another 4xx, a 5xx, a redirect, a bad body: unavailable, and not cached", async () => {
    const answers: (() => Response)[] = [
      () => new Response("nope", { status: 401 }),
      () => new Response("gone", { status: 404 }),
      () => new Response("oops", { status: 500 }),
      () => new Response("busy", { status: 503 }),
      () => new Response(null, { status: 302, headers: { location: "http://127.0.0.1:1/" } }),
      () => new Response("yes", { status: 200 }),
      () => Response.json({ allow: "yes" }),
      () => Response.json({ allow: true, ttlS: -1 }),
      () => Response.json({ ok: true }),
      () => new Response(null, { status: 204 }),
      () => Response.json({ allow: true, pad: "x".repeat(10_000) }),
    ];
    const { authz } = client();
    for (const [i, answer] of answers.entries()) {
      handler = answer;
      expect(await outcome(authz.allows(alice, "typing:x", "subscribe"))).toBe("unavailable");
      expect(requests).toHaveLength(i + 1);
    }
    expect(authz.size).toBe(0);
  });

  test("the unavailable error says why, in one sentence", async () => {
    handler = () => new Response("oops", { status: 500 });
    const { authz } = client();
    const error = await authz.allows(alice, "typing:x", "subscribe").catch((e: unknown) => e);
    expect((error as SwitchboardError).message).toBe("the app cannot decide now (the app answered 500); retry");
  });

  test("the cache is bounded: past maxEntries the oldest answer goes", async () => {
    const { authz } = client({ maxEntries: 3 });
    for (const topic of ["t:1", "t:2", "t:3", "t:4"]) await authz.allows(alice, topic, "subscribe");
    expect(authz.size).toBe(3);
    await authz.allows(alice, "t:4", "subscribe");
    await authz.allows(alice, "t:2", "subscribe");
    expect(requests).toHaveLength(4);
    await authz.allows(alice, "t:1", "subscribe");
    expect(requests).toHaveLength(5);
  });
});

describe("identical questions in flight share one request", () => {
  test("ten at once → one request, one answer for all", async () => {
    handler = async () => {
      await Bun.sleep(100);
      return Response.json({ allow: true });
    };
    const { authz } = client();
    const answers = await Promise.all(Array.from({ length: 10 }, () => authz.allows(alice, "typing:x", "subscribe")));
    expect(answers).toEqual(Array(10).fill(true));
    expect(requests).toHaveLength(1);
  });

  test("a failure is shared too, and the next question asks again", async () => {
    handler = async () => {
      await Bun.sleep(100);
      return new Response("oops", { status: 500 });
    };
    const { authz } = client();
    const outcomes = await Promise.all(Array.from({ length: 5 }, () => outcome(authz.allows(alice, "typing:x", "subscribe"))));
    expect(outcomes).toEqual(Array(5).fill("unavailable"));
    expect(requests).toHaveLength(1);
    handler = () => Response.json({ allow: true });
    expect(await authz.allows(alice, "typing:x", "subscribe")).toBe(true);
    expect(requests).toHaveLength(2);
  });
});

describe("an app that is slow, down or flapping", () => {
  test("no answer within 2 s → unavailable after about 2 s, not cached", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    handler = async () => {
      await held;
      return Response.json({ allow: true });
    };
    const { authz } = client();
    const started = performance.now();
    const error = await authz.allows(alice, "typing:slow", "subscribe").catch((e: unknown) => e);
    const took = performance.now() - started;
    release();
    expect((error as SwitchboardError).code).toBe("unavailable");
    expect((error as SwitchboardError).message).toContain("no answer within 2000 ms");
    expect(took).toBeGreaterThanOrEqual(1950);
    expect(took).toBeLessThan(3000);
    handler = () => Response.json({ allow: false });
    expect(await authz.allows(alice, "typing:slow", "subscribe")).toBe(false);
  });

  test("a body that trickles past the deadline is unavailable too", async () => {
    handler = () =>
      new Response(
        new ReadableStream({
          async start(controller) {
            controller.enqueue(new TextEncoder().encode('{"allow":'));
            await Bun.sleep(400);
            controller.enqueue(new TextEncoder().encode("true}"));
            controller.close();
          },
        }),
        { status: 200, headers: { "content-type": "application/json" } },
      );
    const { authz } = client({ timeoutMs: 200 });
    expect(await outcome(authz.allows(alice, "typing:drip", "subscribe"))).toBe("unavailable");
  });

  test("nothing listening → unavailable at once", async () => {
    const authz = new AuthzClient({ url: `http://127.0.0.1:${freePort()}/authz`, secret: SECRET });
    const started = performance.now();
    const error = await authz.allows(alice, "typing:x", "subscribe").catch((e: unknown) => e);
    expect((error as SwitchboardError).code).toBe("unavailable");
    expect((error as SwitchboardError).message).toContain("cannot be reached");
    expect(performance.now() - started).toBeLessThan(1000);
  });

  test("flapping: each outage is unavailable, each answer decides; an outage never becomes a refusal", async () => {
    let n = 0;
    handler = () => (n++ % 2 === 0 ? new Response("down", { status: 502 }) : Response.json({ allow: true, ttlS: 0 }));
    const { authz } = client();
    const seen: (boolean | string)[] = [];
    for (let i = 0; i < 6; i++) seen.push(await outcome(authz.allows(alice, "typing:f", "publish")));
    expect(seen).toEqual(["unavailable", true, "unavailable", true, "unavailable", true]);
    expect(requests).toHaveLength(6);
  });
});
