/** What the chaos run records (bench/chaos.ts), and what its checker reads (bench/chaos/check.ts). */

export interface Position {
  epoch: string;
  seq: number;
}

/** One thing a client did or got; `conn` numbers its sockets (a reconnect opens the next). */
export type LogEvent =
  | { t: number; conn: number; kind: "connect"; port: number }
  | { t: number; conn: number; kind: "close"; code: number }
  | { t: number; conn: number; kind: "subscribe"; ref: number; topic: string; since: Position | null }
  | { t: number; conn: number; kind: "frame"; frame: any };

export interface ClientLog {
  id: string;
  events: LogEvent[];
}

export type Outcome = "acked" | "unavailable" | "timeout" | "error";

/** One try of one publication; a retry sends the same key. */
export interface Attempt {
  t0: number;
  t1: number;
  outcome: Outcome;
  seq?: number;
  epoch?: string;
  detail?: string;
}

export interface PublishRecord {
  key: string;
  topic: string;
  via: "ws" | "http";
  /** What the publication carries as `data`: `{k: key, via, n}`. */
  data: unknown;
  attempts: Attempt[];
}

export interface FaultRecord {
  kind: string;
  target: string;
  start: number;
  end: number;
}

export interface TopicHistory {
  topic: string;
  epoch: string;
  seq: number;
  messages: { seq: number; epoch: string; data: unknown }[];
}

/** A small seeded PRNG (mulberry32): the seed alone fixes every random choice of the orchestrator. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
