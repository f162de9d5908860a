/**
 * A real HTTP webhook receiver on a free loopback port: records every request and answers as the
 * test says (a status, or a stall that never answers until `release`/`stop`).
 */
import type { Server } from "bun";
import { verifySignature } from "../../src/auth/signature.ts";

export interface ReceivedWebhook {
  raw: string;
  event: { id: string; type: string; at: number; data: any };
  signature: string | null;
  /** With a secret given to startReceiver: whether verifySignature accepted it (if not, the answer was 401). */
  signatureValid: boolean | null;
  /** The `sender` query parameter of the URL it was posted to (tests give each sender its own). */
  sender: string | null;
  receivedAt: number;
  status: number | "stall";
}

export type Answer = number | "stall";

export interface WebhookReceiver {
  url: string;
  received: ReceivedWebhook[];
  /** Decides the answer to each request; default 200. */
  answer: (event: ReceivedWebhook["event"]) => Answer;
  /** Answered with 2xx, in arrival order. */
  delivered(): ReceivedWebhook[];
  /** Answers every stalled request with 503 now. */
  release(): void;
  stop(): Promise<void>;
}

export function startReceiver(secret?: string): WebhookReceiver {
  const stalls = new Set<() => void>();
  const receiver: WebhookReceiver = {
    url: "",
    received: [],
    answer: () => 200,
    delivered: () => receiver.received.filter((r) => typeof r.status === "number" && r.status >= 200 && r.status < 300),
    release() {
      for (const resolve of stalls) resolve();
      stalls.clear();
    },
    async stop() {
      receiver.release();
      await server.stop(true);
    },
  };
  const server: Server<undefined> = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 30,
    async fetch(req) {
      const raw = await req.text();
      const signature = req.headers.get("switchboard-signature");
      let signatureValid: boolean | null = null;
      if (secret !== undefined) {
        try {
          verifySignature(raw, signature, secret);
          signatureValid = true;
        } catch {
          signatureValid = false;
        }
      }
      const event = JSON.parse(raw) as ReceivedWebhook["event"];
      const status = signatureValid === false ? 401 : receiver.answer(event);
      const record: ReceivedWebhook = { raw, event, signature, signatureValid, sender: new URL(req.url).searchParams.get("sender"), receivedAt: Date.now(), status };
      receiver.received.push(record);
      if (status === "stall") {
        await new Promise<void>((resolve) => stalls.add(resolve));
        return new Response("released", { status: 503 });
      }
      return new Response(status >= 200 && status < 300 ? "ok" : "no", { status });
    },
  });
  receiver.url = `http://127.0.0.1:${server.port}/hooks`;
  return receiver;
}
