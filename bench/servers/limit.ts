/**
 * The "limit" reference: the least a Bun + Redis fan-out can do. No auth, no validation, no
 * ordering, no history. A client frame `{"type":"subscribe","topic"}` joins a Bun topic (and, once
 * per process, the Redis channel); `{"type":"publish","topic","data"}` is PUBLISHed to Redis and
 * acked when Redis answers; every Redis message goes out once with `server.publish`.
 *
 * With LIMIT_FRAME=spec (the bench's `limit-spec` target) it sends the SPEC's whole `message` frame
 * instead: the same fields and the same bytes as Switchboard's (`seq` counted per topic in this
 * process, one random 16-hex-digit `epoch`, `from` the bench's user, `ts`), and nothing else of what
 * Switchboard does. Against it, fan-out measures what Switchboard adds beyond the frame's bytes.
 *
 * Env: PORT, REDIS_URL, LIMIT_FRAME. Exits when its parent goes away.
 */
import Redis from "ioredis";

const port = Number(process.env.PORT);
const redisUrl = process.env.REDIS_URL!;
const pub = new Redis(redisUrl);
const sub = new Redis(redisUrl);
pub.on("error", () => {});
sub.on("error", () => {});
const channels = new Map<string, Promise<unknown>>();
const specFrame = process.env.LIMIT_FRAME === "spec";
const epoch = crypto.getRandomValues(new BigUint64Array(1))[0]!.toString(16).padStart(16, "0");
const seqs = new Map<string, number>();

/** The frame a publication goes out in: the limit's own, or (LIMIT_FRAME=spec) the SPEC's. */
function messageFrame(f: Frame): string {
  if (!specFrame) return JSON.stringify({ type: "message", topic: f.topic, data: f.data });
  const seq = (seqs.get(f.topic) ?? 0) + 1;
  seqs.set(f.topic, seq);
  return JSON.stringify({ type: "message", topic: f.topic, seq, epoch, from: "alice", data: f.data, ts: Date.now() });
}

type Frame = { type: string; topic: string; ref?: number; data?: unknown };

const server = Bun.serve<undefined>({
  port,
  hostname: "0.0.0.0",
  fetch(req, srv) {
    if (new URL(req.url).pathname === "/ws" && srv.upgrade(req, { data: undefined })) return;
    return new Response("ok");
  },
  websocket: {
    idleTimeout: 120,
    message(ws, msg) {
      const f = JSON.parse(String(msg)) as Frame;
      if (f.type === "publish") {
        const frame = messageFrame(f);
        pub.publish(f.topic, frame).then(
          () => ws.send(`{"type":"ack","ref":${f.ref}}`),
          () => ws.send(`{"type":"error","ref":${f.ref},"code":"unavailable"}`),
        );
      } else if (f.type === "subscribe") {
        let joined = channels.get(f.topic);
        if (!joined) channels.set(f.topic, (joined = sub.subscribe(f.topic)));
        joined.then(() => {
          ws.subscribe(f.topic);
          ws.send(`{"type":"ack","ref":${f.ref}}`);
        });
      }
    },
  },
});

sub.on("message", (channel: string, message: string) => {
  server.publish(channel, message, false);
});

setInterval(() => {
  if (process.ppid === 1) process.exit(0);
}, 1000).unref();
