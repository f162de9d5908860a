/**
 * The Socket.IO side of the `storm` scenario (lib/storm.ts): `count` clients of the real
 * socket.io-client (default reconnection: 1 s ± 50 % jitter, doubling to 5 s), WebSocket transport,
 * each in one room. Connection-state recovery is the client's own: on reconnect it presents its
 * session id and last offset, and `socket.recovered` says whether the server restored the session
 * (rooms and missed packets). A client that was not recovered joins its room again, as an
 * application would. Same IPC and report as storm-worker.ts; `recovered` per reconnect.
 */
import { io, type Socket } from "socket.io-client";
import { Histogram } from "./lib/histogram.ts";

interface Init {
  role: "storm" | "bystander";
  url: string;
  first: number;
  count: number;
  topics: number;
}

interface Tracked {
  socket: Socket;
  topic: string;
  last: number;
  lost: number;
  duplicated: number;
  droppedAt: number | null;
  resumedAfterMs: number | null;
  recovered: boolean[];
}

const tracked: Tracked[] = [];
const closeCodes: Record<string, number> = {};
const latency = new Histogram();
let measuring = false;

function join(t: Tracked): Promise<void> {
  return new Promise((resolve, reject) => {
    t.socket.timeout(30_000).emit("join", t.topic, (error: unknown) => (error ? reject(error) : resolve()));
  });
}

function track(init: Init, i: number): Promise<void> {
  const topic = `room:storm-${i % init.topics}`;
  // forceNew: one Engine.IO connection per client (io() shares a Manager per URL by default).
  const socket = io(init.url, { transports: ["websocket"], forceNew: true });
  const t: Tracked = { socket, topic, last: -1, lost: 0, duplicated: 0, droppedAt: null, resumedAfterMs: null, recovered: [] };
  tracked.push(t);
  let connectedOnce = false;
  socket.on("message", (m: { seq: number; t: number }) => {
    if (t.last >= 0 && m.seq <= t.last) t.duplicated++;
    else if (t.last >= 0 && m.seq > t.last + 1) t.lost += m.seq - t.last - 1;
    t.last = Math.max(t.last, m.seq);
    if (measuring && init.role === "bystander") latency.record((Date.now() - m.t) * 1000);
  });
  socket.on("disconnect", (reason) => {
    closeCodes[reason] = (closeCodes[reason] ?? 0) + 1;
    t.droppedAt ??= performance.now();
  });
  return new Promise((resolve, reject) => {
    socket.on("connect", () => {
      if (!connectedOnce) {
        connectedOnce = true;
        join(t).then(resolve, reject);
        return;
      }
      const recovered = socket.recovered;
      const done = () => {
        t.recovered.push(recovered);
        if (t.droppedAt !== null && t.resumedAfterMs === null) t.resumedAfterMs = performance.now() - t.droppedAt;
      };
      if (recovered) done();
      else join(t).then(done, () => {});
    });
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
    const pending: Promise<unknown>[] = [];
    for (let i = init.first; i < init.first + init.count; i++) {
      pending.push(track(init, i));
      if (pending.length % 200 === 0) await Promise.allSettled(pending.slice(-200));
    }
    const settled = await Promise.allSettled(pending);
    measuring = true;
    process.send!({ ev: "ready", ok: settled.filter((s) => s.status === "fulfilled").length, failed: settled.filter((s) => s.status === "rejected").length });
  } else if (m.cmd === "target") {
    // The Manager opens every reconnect to its `uri`: point it at B before A goes away.
    for (const t of tracked) (t.socket.io as unknown as { uri: string }).uri = m.url;
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
    for (const t of tracked) t.socket.close();
    process.exit(0);
  }
});
