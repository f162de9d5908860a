/**
 * The server API as the cross-machine tests call it: `/api/*` with the test key, tokens minted
 * by `/api/tokens`, and first-message sockets for those tokens.
 */
import { expect } from "bun:test";
import { TestClient } from "./client.ts";
import { TEST_API_KEY, postJson, readJson, type TestServer } from "./server.ts";

const auth = { Authorization: `Bearer ${TEST_API_KEY}` };

export async function api(server: TestServer, method: "GET" | "POST", path: string, body?: unknown) {
  const res = method === "GET" ? await fetch(`${server.url}${path}`, { headers: auth }) : await postJson(server, path, body, auth);
  return readJson(res);
}

/** A token for an app user, minted by the API of `server`. */
export async function mintToken(server: TestServer, user: string): Promise<string> {
  const { status, body } = await api(server, "POST", "/api/tokens", { user: { id: user, name: user } });
  expect(status).toBe(200);
  return body.token;
}

/** A socket of `user` on `server`, by first-message auth (a token minted on `minter`), kept in `clients`. */
export async function tokenSocket(clients: Set<TestClient>, server: TestServer, minter: TestServer, user: string, jwt?: string): Promise<TestClient> {
  const client = new TestClient(server.wsUrl);
  clients.add(client);
  await client.waitOpen();
  client.send({ type: "auth", token: jwt ?? (await mintToken(minter, user)) });
  await client.welcome(5000);
  return client;
}
