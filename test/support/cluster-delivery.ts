/**
 * What the Redis Cluster fault tests check from outside (test/redis-cluster-faults.test.ts,
 * test/redis-cluster-reshard.test.ts): each subscriber's stream of a topic against the
 * publications that were acknowledged, and sockets that connect and subscribe as the SDK does.
 */
import { expect } from "bun:test";
import { TestClient, type Frame } from "./client.ts";

export interface Acked {
  topic: string;
  seq: number;
  epoch: string;
  data: string;
}

/**
 * One subscriber's frames of one topic: no duplicate, contiguous seqs within an epoch, a new epoch
 * only after a `resync`; an acknowledged (epoch, seq) it received carries that publication's data
 * (a reused seq would carry another's); an acknowledged publication it did not receive was
 * covered by a `resync` after which its epoch was left or its seq passed.
 */
export function checkDelivery(frames: Frame[], acked: Acked[]): void {
  const got = new Map<string, string>();
  let position: { seq: number; epoch: string } | null = null;
  const skipped: { from: { seq: number; epoch: string } | null; to: { seq: number; epoch: string } }[] = [];
  for (const f of frames) {
    if (f.type === "resync") {
      skipped.push({ from: position, to: { seq: f.seq, epoch: f.epoch } });
      position = { seq: f.seq, epoch: f.epoch };
      continue;
    }
    const id = `${f.epoch}:${f.seq}`;
    if (got.has(id)) throw new Error(`${f.topic}: ${id} delivered twice`);
    got.set(id, f.data as string);
    if (position !== null) expect({ topic: f.topic, epoch: f.epoch, seq: f.seq }).toEqual({ topic: f.topic, epoch: position.epoch, seq: position.seq + 1 });
    position = { seq: f.seq, epoch: f.epoch };
  }
  for (const a of acked) {
    const data = got.get(`${a.epoch}:${a.seq}`);
    if (data !== undefined) {
      expect(data).toBe(a.data);
      continue;
    }
    const covered = skipped.some(
      (s) => s.from === null || (s.from.epoch === a.epoch && s.from.seq < a.seq && (s.to.epoch !== a.epoch || s.to.seq >= a.seq)),
    );
    if (!covered) throw new Error(`acknowledged ${a.topic} ${a.epoch}:${a.seq} (${a.data}) neither delivered nor covered by a resync`);
  }
}

/**
 * Subscribes, sending the subscribe again after `unavailable` as the SDK does (docs/client.md). A
 * process opens its link to a shard when the first topic of that shard is subscribed, and on a
 * loaded machine that link may not be up within the broker's 1 s wait: the refusal is temporary.
 */
export async function subscribeAsTheSdkDoes(client: TestClient, topic: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await client.subscribe(topic);
      return;
    } catch (error) {
      if (!String(error).includes('"code":"unavailable"') || Date.now() > deadline) throw error;
      await Bun.sleep(200);
    }
  }
}

/**
 * Connects, again after a 1013 as the SDK does (docs/client.md): the socket's inbox lives on one
 * shard, and on a loaded machine the process's link there may not be up within the broker's 1 s
 * wait, so the welcome is refused with 1013 "broker unavailable".
 */
export async function connectAsTheSdkDoes(wsUrl: string, cookie: string): Promise<TestClient> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await TestClient.connect(wsUrl, { cookie }, 5000);
    } catch (error) {
      if (!String(error).includes("(1013 ") || Date.now() > deadline) throw error;
      await Bun.sleep(200);
    }
  }
}
