/**
 * Heap really held by the embedded broker's history vs what HISTORY_MAX_BYTES counts
 * (src/broker/memory.ts COST_*), per kind of content. Run: bun bench/tools/history-memory.ts
 */
import { heapStats } from "bun:jsc";
import { MemoryBroker } from "../../src/broker/memory.ts";

function heap(): number {
  Bun.gc(true);
  Bun.gc(true);
  return heapStats().heapSize;
}

async function measure(name: string, fill: (broker: MemoryBroker) => Promise<void>): Promise<void> {
  const broker = new MemoryBroker({ historySize: 100, historyTtlS: 300 });
  await broker.start({ onPublication() {}, onEphemeral() {}, onControl() {}, onReconnect() {} });
  const before = heap();
  await fill(broker);
  const held = heap() - before;
  const counted = broker.historyBytes;
  console.log(`${name.padEnd(44)} heap ${(held / 1e6).toFixed(2).padStart(7)} MB  counted ${(counted / 1e6).toFixed(2).padStart(7)} MB  heap/counted ${(held / counted).toFixed(2)}`);
  await broker.close();
}

const N = 20_000;
const payload = (i: number, size: number) => ({ text: `message ${i} `.padEnd(size, "x") });

await measure(`${N} subscribe-only topics`, async (b) => {
  for (let i = 0; i < N; i++) await b.history(`room:topic-${i}`);
});
await measure(`${N} topics × 1 message of 100 B`, async (b) => {
  for (let i = 0; i < N; i++) await b.publish(`room:topic-${i}`, { from: "alice", data: payload(i, 100), ts: Date.now() });
});
await measure(`200 topics × 100 messages of 1 KB`, async (b) => {
  for (let t = 0; t < 200; t++) for (let i = 0; i < 100; i++) await b.publish(`room:t${t}`, { from: "alice", data: payload(i, 1000), ts: Date.now() });
});
await measure(`${N} topics × 1 message with a key`, async (b) => {
  for (let i = 0; i < N; i++) await b.publish(`room:topic-${i}`, { from: "alice", data: i, ts: Date.now(), key: `key-${i}-${"k".repeat(20)}` });
});
await measure(`1 topic × ${N} keys (history 100)`, async (b) => {
  for (let i = 0; i < N; i++) await b.publish("room:keys", { from: "alice", data: i, ts: Date.now(), key: `key-${i}-${"k".repeat(20)}` });
});
