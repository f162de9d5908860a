/**
 * `bun bench/redis-fanout.ts [--subs 1000] [--messages 200] [--rate 100]`
 *
 * Issue 3's numbers, on this machine: a real redis-server and 2 Switchboard processes.
 * 1. Broker publish latency: RedisBroker.publish (the Lua ordering point) round trip, sequential.
 * 2. WebSocket publish latency: `publish` → `ack` through a server, while the fan-out below runs.
 * 3. Fan-out: one topic, `--subs` subscribers split over the 2 processes; publishers on both
 *    processes send `--messages` publications at `--rate` per second in total; reports deliveries/s
 *    and the publish → delivery latency seen by probe subscribers on each process.
 * Everything (Redis, servers, clients) shares this machine's cores: the client side is part of the cost.
 */
import { parseArgs } from "node:util";
import { RedisBroker } from "../src/broker/redis.ts";
import { startCluster } from "../test/support/cluster.ts";
import { loginSession } from "../test/support/server.ts";

const { values } = parseArgs({
  options: {
    subs: { type: "string", default: "1000" },
    messages: { type: "string", default: "200" },
    rate: { type: "string", default: "100" },
  },
});
const SUBS = Number(values.subs);
const MESSAGES = Number(values.messages);
const RATE = Number(values.rate);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const fmt = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `p50 ${percentile(s, 50).toFixed(2)} ms, p99 ${percentile(s, 99).toFixed(2)} ms, max ${s.at(-1)!.toFixed(2)} ms (n=${s.length})`;
};

const cluster = await startCluster(["bench-a", "bench-b"], {
  RATE_LIMIT_PER_S: "100000",
  RATE_LIMIT_BURST: "100000",
  MAX_CONNECTIONS_PER_IP: "100000",
  MAX_CONNECTIONS_PER_USER: "100000",
  LOG_LEVEL: "error",
});
const deadline = setTimeout(() => {
  console.error("bench: gave up after 5 minutes");
  void cluster.stop().then(() => process.exit(1));
}, 300_000);

try {
  // 1. The ordering point alone.
  const broker = new RedisBroker({ url: cluster.redis.url, instanceId: "bench-broker", historySize: 100, historyTtlS: 300 });
  await broker.start({ onPublication() {}, onEphemeral() {}, onControl() {}, onReconnect() {} });
  const brokerLatency: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const t = performance.now();
    await broker.publish("room:bench-broker", { from: "bench", data: { i, text: "hello" }, ts: Date.now() });
    if (i >= 200) brokerLatency.push(performance.now() - t);
  }
  await broker.close();
  console.log(`broker publish (Lua append+publish, sequential): ${fmt(brokerLatency)}`);

  // 2 + 3. Fan-out through 2 processes.
  const [a, b] = cluster.nodes as [NonNullable<(typeof cluster.nodes)[0]>, NonNullable<(typeof cluster.nodes)[0]>];
  const cookie = (await loginSession(a, "alice", "alice-password")).cookie;
  const topic = `room:fanout-${Date.now()}`;
  let delivered = 0;
  const latencies: number[] = [];
  const sockets: WebSocket[] = [];
  const WS = WebSocket as unknown as new (url: string, o: { headers: Record<string, string> }) => WebSocket;

  const open = (url: string, probe: boolean) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WS(url, { headers: { Cookie: cookie } });
      const timer = setTimeout(() => reject(new Error("subscribe timed out")), 10_000);
      ws.onmessage = (ev) => {
        const text = ev.data as string;
        if (text.startsWith('{"type":"message"')) {
          delivered++;
          if (probe) latencies.push(Date.now() - (JSON.parse(text).data.t as number));
        } else if (text.startsWith('{"type":"welcome"')) {
          ws.send(JSON.stringify({ type: "subscribe", topic, ref: 1 }));
        } else if (text.includes('"type":"ack"') && text.includes('"ref":1,')) {
          clearTimeout(timer);
          resolve(ws);
        }
      };
      ws.onerror = () => reject(new Error("socket error"));
      sockets.push(ws);
    });

  const started = performance.now();
  for (let i = 0; i < SUBS; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, SUBS - i) }, (_, j) => open(((i + j) % 2 === 0 ? a : b).wsUrl, i + j < 2)));
  }
  console.log(`${SUBS} subscribers on 2 processes connected and subscribed in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  // Publishers: one per process, not subscribed; acks measured.
  const ackLatency: number[] = [];
  const publishers = await Promise.all(
    [a, b].map(
      (server) =>
        new Promise<{ ws: WebSocket; acks: Map<number, number> }>((resolve) => {
          const ws = new WS(server.wsUrl, { headers: { Cookie: cookie } });
          const acks = new Map<number, number>();
          ws.onmessage = (ev) => {
            const f = JSON.parse(ev.data as string);
            if (f.type === "welcome") resolve({ ws, acks });
            if (f.type === "ack" && acks.has(f.ref)) ackLatency.push(performance.now() - acks.get(f.ref)!);
          };
          sockets.push(ws);
        }),
    ),
  );
  // Idle: publish → ack through a server and Redis with no subscriber load.
  const idleTopic = `${topic}-idle`;
  for (let i = 0; i < 300; i++) {
    const p = publishers[i % 2]!;
    p.acks.set(2_000_000 + i, performance.now());
    const before = ackLatency.length;
    p.ws.send(JSON.stringify({ type: "publish", topic: idleTopic, ref: 2_000_000 + i, data: { i } }));
    while (ackLatency.length === before) await Bun.sleep(0);
  }
  console.log(`websocket publish → ack through Redis, no subscribers: ${fmt(ackLatency.splice(0).slice(50))}`);

  let ref = 0;
  for (const rate of [...new Set([20, RATE])]) {
    delivered = 0;
    latencies.length = 0;
    const expected = MESSAGES * SUBS;
    const t0 = performance.now();
    for (let i = 0; i < MESSAGES; i++) {
      const p = publishers[i % 2]!;
      const r = ref++;
      p.acks.set(r, performance.now());
      p.ws.send(JSON.stringify({ type: "publish", topic, ref: r, data: { t: Date.now(), i, text: "x".repeat(64) } }));
      const wait = t0 + ((i + 1) * 1000) / rate - performance.now();
      if (wait > 0) await Bun.sleep(wait);
    }
    const sendEnd = performance.now();
    const until = Date.now() + 60_000;
    while (delivered < expected && Date.now() < until) await Bun.sleep(10);
    const elapsedS = (performance.now() - t0) / 1000;
    console.log(
      `fan-out at ${rate} publications/s: ${delivered}/${expected} deliveries in ${elapsedS.toFixed(2)} s (publishing took ${((sendEnd - t0) / 1000).toFixed(2)} s) → ${Math.round(delivered / elapsedS)} deliveries/s`,
    );
    console.log(`  websocket publish → ack through Redis: ${fmt(ackLatency.splice(0))}`);
    console.log(`  publish → delivery on probe subscribers (one per process; ms clock): ${fmt(latencies)}`);
  }

  // Saturation: publish as fast as the acks come back (window of 64 in flight per publisher).
  delivered = 0;
  const burst = MESSAGES * 2;
  const t1 = performance.now();
  for (let i = 0; i < burst; i++) {
    publishers[i % 2]!.ws.send(JSON.stringify({ type: "publish", topic, ref: 1_000_000 + i, data: { t: Date.now(), i, text: "x".repeat(64) } }));
    if (i % 64 === 63) await Bun.sleep(1);
  }
  const until2 = Date.now() + 120_000;
  while (delivered < burst * SUBS && Date.now() < until2) await Bun.sleep(10);
  const s2 = (performance.now() - t1) / 1000;
  console.log(`saturation: ${burst} publications as fast as possible → ${delivered}/${burst * SUBS} deliveries in ${s2.toFixed(2)} s → ${Math.round(delivered / s2)} deliveries/s`);

  for (const ws of sockets) ws.close();
  await Bun.sleep(200);
} finally {
  clearTimeout(deadline);
  await cluster.stop();
}
