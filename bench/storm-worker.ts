/**
 * A generator process of the `storm` scenario (lib/storm.ts): `count` clients of the real SDK
 * (src/client, default reconnect settings: its jitter is what is measured), each subscribed to
 * one topic. Every upgrade goes to the current `target` URL, which the orchestrator switches to B
 * right before it kills A. Per client it records the seqs it got (gaps and duplicates), when its
 * link dropped and when it resumed (`onRecovered`), and the close codes it saw (1013 = shed).
 * Bystanders (`role: "bystander"`) stay on B all along and report their delivery latency. With
 * `sessionSecret` each storm client presents a session of its own on every upgrade (to A, then B).
 *
 * IPC in: {cmd:"init", ...}, {cmd:"target", url}, {cmd:"report"}, {cmd:"exit"}.
 * IPC out: {ev:"ready"}, {ev:"report", ...}.
 */
import { createClient, type SwitchboardClient } from "../src/client/index.ts";
import { newSessionId, SessionSigner } from "../src/auth/sessions.ts";
import { COOKIE_NAME } from "../src/auth/cookie.ts";
import { Histogram } from "./lib/histogram.ts";

interface Init {
  role: "storm" | "bystander";
  url: string;
  cookie: string;
  /** Set: each storm client gets a session of its own, signed with this SESSION_SECRET (lib/storm.ts `sessions`). */
  sessionSecret?: string;
  first: number;
  count: number;
  topics: number;
}

interface Tracked {
  client: SwitchboardClient;
  topic: string;
  last: number;
  lost: number;
  duplicated: number;
  droppedAt: number | null;
  resumedAfterMs: number | null;
  recovered: boolean[];
}

let target = "";
const tracked: Tracked[] = [];
const closeCodes: Record<string, number> = {};
const latency = new Histogram();
let measuring = false;

/**
 * A session cookie of its own for each of `count` clients: the user of the bench's login (read from
 * its cookie), a fresh session id each, signed as `/auth/login` signs (src/http/auth.ts).
 */
async function ownSessions(init: Init): Promise<string[]> {
  const jwt = init.cookie.slice(init.cookie.indexOf("=") + 1);
  const claims = JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString()) as { sub: string; name?: string };
  const signer = new SessionSigner(new TextEncoder().encode(init.sessionSecret));
  const user = { id: claims.sub, name: claims.name ?? claims.sub };
  const cookies: string[] = [];
  for (let i = 0; i < init.count; i++) cookies.push(`${COOKIE_NAME}=${await signer.sign("session", user, newSessionId(), 86_400)}`);
  return cookies;
}

function track(init: Init, i: number, cookie: string): Promise<unknown> {
  const topic = `room:storm-${i % init.topics}`;
  const client = createClient({
    url: init.url,
    createWebSocket: () => new WebSocket(target, { headers: { Cookie: cookie } } as unknown as string[]),
  });
  const t: Tracked = { client, topic, last: -1, lost: 0, duplicated: 0, droppedAt: null, resumedAfterMs: null, recovered: [] };
  tracked.push(t);
  client.on("closed", ({ code }: { code: number }) => {
    closeCodes[code] = (closeCodes[code] ?? 0) + 1;
    t.droppedAt ??= performance.now();
  });
  return client.subscribe(topic, {
    onMessage(m) {
      if (m.seq === undefined) return; // room topics are ordered: every message carries its seq
      if (t.last >= 0 && m.seq <= t.last) t.duplicated++;
      else if (t.last >= 0 && m.seq > t.last + 1) t.lost += m.seq - t.last - 1;
      t.last = Math.max(t.last, m.seq);
      const sent = (m.data as { t?: number } | null)?.t;
      if (measuring && init.role === "bystander" && typeof sent === "number") latency.record((Date.now() - sent) * 1000);
    },
    onRecovered(recovered) {
      t.recovered.push(recovered);
      if (t.droppedAt !== null && t.resumedAfterMs === null) t.resumedAfterMs = performance.now() - t.droppedAt;
    },
  });
}

function minLastByTopic(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of tracked) out[t.topic] = Math.min(out[t.topic] ?? Number.POSITIVE_INFINITY, t.last);
  return out;
}

process.on("message", async (m: any) => {
  if (m.cmd === "init") {
    const init = m.init as Init;
    target = init.url;
    const cookies = init.sessionSecret === undefined ? null : await ownSessions(init);
    const pending: Promise<unknown>[] = [];
    for (let i = init.first; i < init.first + init.count; i++) {
      pending.push(track(init, i, cookies?.[i - init.first] ?? init.cookie));
      if (pending.length % 200 === 0) await Promise.allSettled(pending.slice(-200));
    }
    const settled = await Promise.allSettled(pending);
    measuring = true;
    process.send!({ ev: "ready", ok: settled.filter((s) => s.status === "fulfilled").length, failed: settled.filter((s) => s.status === "rejected").length });
  } else if (m.cmd === "target") {
    target = m.url;
  } else if (m.cmd === "report") {
    process.send!({
      ev: "report",
      clients: tracked.length,
      resumed: tracked.filter((t) => t.recovered.length > 0).length,
      recoveredTrue: tracked.filter((t) => t.recovered.length > 0 && t.recovered.every(Boolean)).length,
      recoveredFalse: tracked.filter((t) => t.recovered.includes(false)).length,
      lost: tracked.reduce((a, t) => a + t.lost, 0),
      duplicated: tracked.reduce((a, t) => a + t.duplicated, 0),
      minLast: minLastByTopic(),
      resumeMs: tracked.map((t) => t.resumedAfterMs).filter((v): v is number => v !== null),
      closeCodes,
      latency: latency.toJSON(),
    });
  } else if (m.cmd === "exit") {
    for (const t of tracked) t.client.close();
    process.exit(0);
  }
});
