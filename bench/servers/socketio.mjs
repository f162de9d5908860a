/**
 * The Socket.IO reference: Socket.IO 4 + @socket.io/redis-adapter on Node, WebSocket transport
 * only, no auth. Events: `join(topic, ack)` joins a room; `pub(topic, data, ack)` emits
 * `message` with `data` to the room on every process (through the Redis adapter) and acks.
 *
 * Env: PORT, REDIS_URL. Exits when its parent goes away.
 */
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import Redis from "ioredis";

const port = Number(process.env.PORT);
const pubClient = new Redis(process.env.REDIS_URL);
const subClient = pubClient.duplicate();
pubClient.on("error", () => {});
subClient.on("error", () => {});

const http = createServer((_req, res) => res.end("ok"));
const io = new Server(http, { transports: ["websocket"], serveClient: false, perMessageDeflate: false });
io.adapter(createAdapter(pubClient, subClient));

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

setInterval(() => {
  if (process.ppid === 1) process.exit(0);
}, 1000).unref();
