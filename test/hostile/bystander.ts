/**
 * A well-behaved client in its own process, so that its latency measures the server and not the
 * test process (which may be busy playing an attacker):
 *
 *   bun test/hostile/bystander.ts <wsUrl> <cookie> <durationMs>
 *
 * Subscribes to a room, then publishes to it every 20 ms and times each publish until its own
 * message comes back (the whole path through the broker). Prints one JSON line:
 * `{sent, received, p50, p99, max, close}` (`close`: the close code if the socket was closed).
 */
export {};

const [url, cookie, durationArg] = process.argv.slice(2);
if (!url || !cookie) {
  console.error("usage: bun test/hostile/bystander.ts <wsUrl> <cookie> <durationMs>");
  process.exit(2);
}
const duration = Number(durationArg ?? 3000);
const topic = `room:bystander-${process.pid}`;
const ws = new WebSocket(url, { headers: { Cookie: cookie } } as unknown as string[]);
const sentAt = new Map<number, number>();
const latencies: number[] = [];
let close: number | null = null;
let subscribed!: () => void;
const ready = new Promise<void>((r) => (subscribed = r));
ws.onmessage = (ev) => {
  const f = JSON.parse(String(ev.data));
  if (f.type === "welcome") ws.send(JSON.stringify({ type: "subscribe", topic, ref: 0 }));
  else if (f.type === "ack" && f.ref === 0) subscribed();
  else if (f.type === "message" && f.topic === topic) {
    const t = sentAt.get(f.data.n);
    if (t !== undefined) latencies.push(performance.now() - t);
  }
};
ws.onclose = (ev) => {
  close = ev.code;
  subscribed();
};
await Promise.race([ready, Bun.sleep(5000)]);
// Tell the parent we are ready to measure.
console.log(JSON.stringify({ ready: true }));
const started = Date.now();
let n = 0;
while (Date.now() - started < duration && close === null) {
  sentAt.set(n, performance.now());
  ws.send(JSON.stringify({ type: "publish", topic, data: { n } }));
  n++;
  await Bun.sleep(20);
}
const settle = Date.now() + 3000;
while (latencies.length < n && Date.now() < settle && close === null) await Bun.sleep(20);
latencies.sort((a, b) => a - b);
const at = (q: number) => Math.round((latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? NaN) * 10) / 10;
console.log(JSON.stringify({ sent: n, received: latencies.length, p50: at(0.5), p99: at(0.99), max: at(1), close }));
ws.close();
process.exit(0);
