/**
 * Helpers for tests that drive the client SDK (src/client) against real server processes:
 * fast reconnect settings, cookie sockets for Bun, and a recorder of everything a client saw.
 */
import { createClient, type ClientOptions, type Message, type ResyncInfo, type SwitchboardClient } from "../../src/client/index.ts";

/** Reconnect/ping settings that keep tests in seconds: dead links noticed within 600 ms. */
export const FAST: Partial<ClientOptions> = {
  reconnect: { baseMs: 50, capMs: 400, restartJitterMs: 300, overloadedMinMs: 200 },
  pingIntervalMs: 300,
  pingTimeoutMs: 300,
  requestTimeoutMs: 5000,
  connectTimeoutMs: 2000,
  network: null,
};

/** Bun's WebSocket accepts headers: send the session cookie as a browser would. */
export function withCookie(cookie: string): (url: string) => WebSocket {
  return (url) => new WebSocket(url, { headers: { Cookie: cookie } } as unknown as string[]);
}

export interface Recorder {
  client: SwitchboardClient;
  /** Every event with its time (ms since the recorder was made). */
  events: { at: number; name: string; payload: unknown }[];
  messages: Map<string, Message[]>;
  resyncs: ResyncInfo[];
  recovered: { topic: string; recovered: boolean }[];
  count(name: string): number;
  last(name: string): unknown;
  /** Handlers for `client.subscribe(topic, recorder.handlers(topic))`. */
  handlers(topic: string): Parameters<SwitchboardClient["subscribe"]>[1];
  seqs(topic: string): number[];
}

export function record(client: SwitchboardClient): Recorder {
  const start = performance.now();
  const r: Recorder = {
    client,
    events: [],
    messages: new Map(),
    resyncs: [],
    recovered: [],
    count: (name) => r.events.filter((e) => e.name === name).length,
    last: (name) => r.events.findLast((e) => e.name === name)?.payload,
    handlers: (topic) => ({
      onMessage(m) {
        let list = r.messages.get(topic);
        if (!list) r.messages.set(topic, (list = []));
        list.push(m);
      },
      onResync(info) {
        r.resyncs.push(info);
      },
      onRecovered(recovered) {
        r.recovered.push({ topic, recovered });
      },
    }),
    seqs: (topic) => (r.messages.get(topic) ?? []).flatMap((m) => (m.seq === undefined ? [] : [m.seq])),
  };
  for (const name of ["connecting", "open", "closed", "reconnecting", "unauthorized", "resync", "error"] as const) {
    client.on(name, (payload: unknown) => r.events.push({ at: performance.now() - start, name, payload }));
  }
  return r;
}

/** Creates a client with FAST settings (overridable) and records it. */
export function recordedClient(options: ClientOptions): Recorder {
  return record(createClient({ ...FAST, ...options }));
}

/** Polls `cond` every 10 ms; throws `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(10);
  }
}

export function range(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => from + i);
}
