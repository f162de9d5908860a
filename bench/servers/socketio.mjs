/**
 * The Socket.IO reference: Socket.IO 4 + @socket.io/redis-adapter on Node, WebSocket transport
 * only, no auth. Events: `join(topic, ack)` joins a room; `pub(topic, data, ack)` emits
 * `message` with `data` to the room on every process (through the Redis adapter) and acks.
 *
 * With SIO_RECOVERY=1 (the `storm` scenario): the Redis Streams adapter
 * (@socket.io/redis-streams-adapter) and connection-state recovery, the only way Socket.IO resumes a
 * session on another server; `POST /pub {topic}` emits `message {seq, t}` to the room, `seq` counted
 * per topic by this process (the storm publishes through one server only), and answers `{seq}`.
 *
 * Env: PORT, REDIS_URL, SIO_RECOVERY. Exits when its parent goes away.
 */
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";
import Redis from "ioredis";

const port = Number(process.env.PORT);
const pubClient = new Redis(process.env.REDIS_URL);
const subClient = pubClient.duplicate();
pubClient.on("error", () => {});
subClient.on("error", () => {});

const recovery = process.env.SIO_RECOVERY === "1";
const seqs = new Map();
const http = createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/pub") return res.end("ok");
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const { topic } = JSON.parse(body);
    const seq = (seqs.get(topic) ?? 0) + 1;
    seqs.set(topic, seq);
    io.to(topic).emit("message", { seq, t: Date.now() });
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({ seq }));
  });
});
const io = new Server(http, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
  ...(recovery ? { connectionStateRecovery: { maxDisconnectionDuration: 120_000, skipMiddlewares: true } } : {}),
});
io.adapter(recovery ? createStreamsAdapter(pubClient) : createAdapter(pubClient, subClient));

io.on("connection", (socket) => {
  socket.on("join", (topic, ack) => {
    socket.join(topic);
    if (typeof ack === "function") ack();
  });
  socket.on("pub", (topic, data, ack) => {
    io.to(topic).emit("message", data);
    if (typeof ack === "function") ack();
  });
});

http.listen(port, "0.0.0.0");

// A graceful stop (storm --storm-signal TERM): io.close() disconnects every socket with "server
// shutting down", a reason after which connection-state recovery persists the session.
process.on("SIGTERM", () => io.close(() => process.exit(0)));

setInterval(() => {
  if (process.ppid === 1) process.exit(0);
}, 1000).unref();
