/**
 * A real application backend for AUTH_CONNECT_URL tests (SPEC §4): a Bun HTTP server on a free port
 * that answers `POST /connect` as the test tells it (200 with an identity, 401, 403, 500, slow,
 * garbage) and records every request it received, headers and body included.
 */
import type { Server } from "bun";
import { verifySignature } from "../../src/auth/signature.ts";

export type ConnectBehaviour =
  | { kind: "ok"; body: unknown }
  | { kind: "status"; status: number }
  | { kind: "slow"; ms: number; body: unknown }
  | { kind: "raw"; text: string };

export interface SeenRequest {
  headers: Record<string, string>;
  body: string;
  /** True when the Switchboard-Signature header verified with the secret. */
  signed: boolean;
}

export interface AppBackend {
  url: string;
  seen: SeenRequest[];
  /** Decides per request, from its Cookie header. */
  answer: (cookie: string) => ConnectBehaviour;
  stop(): void;
}

export function serveAppBackend(secret: string, answer: AppBackend["answer"]): AppBackend {
  const state: AppBackend = { url: "", seen: [], answer, stop: () => server.stop(true) };
  const server: Server<undefined> = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      if (new URL(req.url).pathname !== "/connect" || req.method !== "POST") return new Response("not found", { status: 404 });
      const body = await req.text();
      let signed = true;
      try {
        verifySignature(body, req.headers.get("switchboard-signature"), secret);
      } catch {
        signed = false;
      }
      state.seen.push({ headers: Object.fromEntries(req.headers), body, signed });
      const behaviour = state.answer(req.headers.get("cookie") ?? "");
      switch (behaviour.kind) {
        case "ok":
          return Response.json(behaviour.body);
        case "status":
          return Response.json({ error: "no" }, { status: behaviour.status });
        case "slow":
          await Bun.sleep(behaviour.ms);
          return Response.json(behaviour.body);
        case "raw":
          return new Response(behaviour.text, { headers: { "Content-Type": "application/json" } });
      }
    },
  });
  state.url = `http://127.0.0.1:${server.port}/connect`;
  return state;
}
