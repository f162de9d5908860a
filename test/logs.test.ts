/**
 * Structured logs: one JSON line per connection lifecycle event (open, close with its code, auth
 * failure) naming the connection, the user, the instance and the region — and never a credential.
 * A full auth round runs at LOG_LEVEL=debug, then the process's whole output is searched for every
 * secret the round produced or used.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { TestClient, closeAll } from "./support/client.ts";
import { upgradeStatus } from "./support/raw-ws.ts";
import {
  PASSWORDS,
  TEST_API_KEY,
  TEST_SESSION_SECRET,
  apiPublish,
  getTicket,
  getToken,
  loginSession,
  postJson,
  startServer,
  type TestServer,
} from "./support/server.ts";
import { startRedis, type TestRedis } from "./support/redis.ts";

const servers: TestServer[] = [];
const clients = new Set<TestClient>();
let redis: TestRedis | undefined;

afterAll(async () => {
  await closeAll(clients);
  for (const s of servers) s.kill();
  await redis?.stop();
});

type Line = Record<string, any>;

/** The value of the `sid` claim inside a JWT (never verified here, only read). */
function sidOf(jwt: string): string {
  return JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString()).sid;
}

/** Runs login, me, ticket, token, bearer ticket, three kinds of sockets, failures and logout; returns every secret seen. */
async function authRound(server: TestServer): Promise<{ secrets: Map<string, string>; ids: { cookie: string; ticket: string; token: string } }> {
  const secrets = new Map<string, string>();
  const alice = await loginSession(server, "alice");
  const cookieJwt = alice.cookie.slice(alice.cookie.indexOf("=") + 1);
  secrets.set("session cookie", cookieJwt);
  secrets.set("session cookie signature", cookieJwt.split(".")[2]!);
  secrets.set("session id", sidOf(cookieJwt));
  expect((await fetch(`${server.url}/auth/me`, { headers: { Cookie: alice.cookie } })).status).toBe(200);

  const ticket = await getTicket(server, alice.cookie);
  secrets.set("ticket", ticket);
  const byTicket = await TestClient.connect(`${server.wsUrl}?ticket=${ticket}`);
  clients.add(byTicket);
  const ticketWelcome = byTicket.frames.find((f) => f.type === "welcome")!;
  // A used ticket is refused: an auth failure that must not echo the ticket.
  expect((await upgradeStatus(`${server.wsUrl}?ticket=${ticket}`)).status).toBe(401);

  const token = await getToken(server, "bob");
  secrets.set("token", token);
  secrets.set("token session id", sidOf(token));
  const byToken = new TestClient(server.wsUrl);
  clients.add(byToken);
  await byToken.waitOpen();
  byToken.send({ type: "auth", token });
  const tokenWelcome = await byToken.welcome();
  const bearerTicket = await (await fetch(`${server.url}/auth/ticket`, { method: "POST", headers: { Authorization: `Bearer ${token}` } })).json();
  secrets.set("bearer ticket", (bearerTicket as { ticket: string }).ticket);

  const byCookie = await TestClient.connect(server.wsUrl, { cookie: alice.cookie });
  clients.add(byCookie);
  const cookieWelcome = byCookie.frames.find((f) => f.type === "welcome")!;
  await byCookie.subscribe("room:logs");
  expect((await apiPublish(server, { topic: "room:logs", data: "hello" })).status).toBe(202);

  // Failures: a forged token (a real one, altered), a wrong password.
  const forged = `${token.slice(0, -4)}AAAA`;
  secrets.set("forged token", forged);
  const bad = new TestClient(server.wsUrl);
  clients.add(bad);
  await bad.waitOpen();
  bad.send({ type: "auth", token: forged });
  expect((await bad.waitClose()).code).toBe(4001);
  const wrongPassword = "wrong-password-7f3a9c";
  secrets.set("wrong password", wrongPassword);
  expect((await postJson(server, "/auth/login", { username: "carol", password: wrongPassword })).status).toBe(401);

  // Logout closes every socket of alice's session with 4001.
  expect((await fetch(`${server.url}/auth/logout`, { method: "POST", headers: { Cookie: alice.cookie, Origin: server.origin } })).status).toBe(204);
  expect((await byCookie.waitClose()).code).toBe(4001);
  expect((await byTicket.waitClose()).code).toBe(4001);
  await byToken.closeAndWait(1000);

  for (const [user, password] of Object.entries(PASSWORDS)) secrets.set(`password of ${user}`, password);
  secrets.set("API key", TEST_API_KEY);
  secrets.set("SESSION_SECRET", TEST_SESSION_SECRET);
  return { secrets, ids: { cookie: cookieWelcome.connectionId, ticket: ticketWelcome.connectionId, token: tokenWelcome.connectionId } };
}

function parseLines(output: string): Line[] {
  return output
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      try {
        return JSON.parse(l) as Line;
      } catch {
        throw new Error(`a log line is not JSON: ${l.slice(0, 200)}`);
      }
    });
}

for (const broker of ["memory", "redis"] as const) {
  describe(`logs of a full auth round (${broker} broker, LOG_LEVEL=debug)`, () => {
    test("every line is JSON; open, close (with code) and auth failures name the connection, user, instance and region; no secret appears", async () => {
      if (broker === "redis") redis ??= await startRedis();
      const server = await startServer({ LOG_LEVEL: "debug", INSTANCE_ID: `logs-${broker}`, REGION: "ams", REDIS_URL: broker === "redis" ? redis!.url : undefined });
      servers.push(server);
      const { secrets, ids } = await authRound(server);
      expect(await server.stop("SIGTERM")).toBe(0);
      const output = server.logs();

      for (const [what, value] of secrets) {
        expect({ what, leaked: output.includes(value) }).toEqual({ what, leaked: false });
      }

      const lines = parseLines(output);
      // (Plain comparisons: Bun 1.4.5's toMatchObject with expect.any() overwrites the received object's fields.)
      for (const line of lines) {
        expect([typeof line.level, typeof line.time, typeof line.msg, line.instance, line.region]).toEqual(["string", "string", "string", `logs-${broker}`, "ams"]);
      }

      const opens = lines.filter((l) => l.msg === "connection open");
      expect(opens.map((l) => [l.connectionId, l.auth]).sort()).toEqual(
        [
          [ids.cookie, "cookie"],
          [ids.ticket, "ticket"],
          [ids.token, "token"],
        ].sort(),
      );
      for (const l of opens) expect(typeof l.user).toBe("string");

      const closes = new Map(lines.filter((l) => l.msg === "connection closed").map((l) => [l.connectionId, l]));
      expect(closes.get(ids.cookie)).toMatchObject({ code: 4001, user: opens.find((l) => l.connectionId === ids.cookie)!.user, auth: "cookie" });
      expect(closes.get(ids.ticket)).toMatchObject({ code: 4001, auth: "ticket" });
      expect(closes.get(ids.token)).toMatchObject({ code: 1000, auth: "token" });

      const failures = lines.filter((l) => l.msg === "auth failure").map((l) => l.reason);
      expect(failures.sort()).toEqual(["bad_credentials", "bad_ticket", "bad_token"]);
      const badToken = lines.find((l) => l.msg === "auth failure" && l.reason === "bad_token")!;
      expect(typeof badToken.connectionId).toBe("string");
      expect(closes.get(badToken.connectionId)).toMatchObject({ code: 4001, user: null });
    }, 30_000);
  });
}
