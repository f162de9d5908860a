/**
 * A load-generator process, driven by bench/run.ts over IPC. Roles:
 * - `subs`: opens connections, subscribes each to one topic, and records every stamped delivery
 *   (end-to-end latency, lost / duplicated / reordered per connection). Also used for `idle`.
 * - `pub`: one connection per topic, publishes stamped data at a fixed rate or as fast as a
 *   bounded window of un-acked publishes (and a bounded lag behind the slowest subscriber) allows;
 *   records publish → ack latency.
 * - `connect`: opens authenticated connections in a loop (bounded concurrency), closing each when
 *   it is ready; records handshakes and their latency.
 * Every process reports its own CPU time so that a saturated generator shows in the results.
 */
import { DIALECTS, type DialectEvent, type TargetName } from "./lib/dialects.ts";
import { Histogram } from "./lib/histogram.ts";
import { connect, encodeStamp, nowUs, type WsConn, type WsHandlers } from "./lib/ws.ts";

export interface Endpoint {
  host: string;
  port: number;
}

export type WorkerInit =
  | { role: "subs"; target: TargetName; servers: Endpoint[]; cookie?: string; first: number; count: number; roomSize: number; topicPrefix: string; concurrency: number }
  | { role: "pub"; target: TargetName; servers: Endpoint[]; cookie?: string; topics: number; publishers: number; pubConns?: number; topicPrefix: string; rate: number; window: number; lagCap: number; payloadBytes: number }
  | { role: "connect"; target: TargetName; servers: Endpoint[]; cookie?: string; concurrency: number };

export type ToWorker =
  | { cmd: "init"; init: WorkerInit }
  | { cmd: "start"; fromUs: number; toUs: number; countFromUs?: number; countToUs?: number }
  | { cmd: "progress"; minLast: number[] }
  | { cmd: "finish"; expected: number[]; refused?: number[][]; deadlineUs: number }
  | { cmd: "exit" };

const send = (m: unknown) => process.send!(m);
const cpuAt = () => process.cpuUsage();
const cpuMs = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => ((b.user - a.user) + (b.system - a.system)) / 1000;

/** Tracks the CPU used between two absolute times (µs). */
function cpuWindow(fromUs: number, toUs: number): () => { cpuMs: number; wallMs: number } {
  let a: NodeJS.CpuUsage | null = null;
  let b: NodeJS.CpuUsage | null = null;
  setTimeout(() => (a = cpuAt()), Math.max(0, (fromUs - nowUs()) / 1000));
  setTimeout(() => (b = cpuAt()), Math.max(0, (toUs - nowUs()) / 1000));
  return () => ({ cpuMs: a && b ? cpuMs(a, b) : NaN, wallMs: (toUs - fromUs) / 1000 });
}

function headers(cookie?: string): Record<string, string> {
  return cookie ? { Cookie: cookie } : {};
}

function countCode(codes: Record<string, number>, code: number | string) {
  codes[code] = (codes[code] ?? 0) + 1;
}

// ---------------------------------------------------------------- subs

function runSubs(init: Extract<WorkerInit, { role: "subs" }>) {
  const dialect = DIALECTS[init.target];
  const n = init.count;
  const last = new Float64Array(n);
  const unique = new Float64Array(n);
  const seen: Uint8Array[] = Array.from({ length: n }, () => new Uint8Array(64));
  const subscribed = new Uint8Array(n);
  const conns: WsConn[] = [];
  const hist = new Histogram();
  const closeCodes: Record<string, number> = {};
  const errors: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  let closedAfterReady = 0;
  let dup = 0;
  let reordered = 0;
  let total = 0;
  let inWindow = 0;
  let fromUs = Infinity;
  let toUs = -Infinity;
  let lastRecvUs = 0;
  let next = 0;
  let reported = false;
  const topicOf = (slot: number) => Math.floor((init.first + slot) / init.roomSize);
  const topicBase = topicOf(0);
  const topicCount = topicOf(n - 1) - topicBase + 1;

  const maybeReady = () => {
    if (!reported && ok + failed === n) {
      reported = true;
      send({ ev: "ready", ok, failed, closeCodes, errors });
    }
  };

  const handlers: WsHandlers = {
    open(c) {
      handle(c, dialect.open(c));
    },
    text(c, text) {
      handle(c, dialect.text(c, text));
    },
    delivery(c, seq, sentUs, recvUs) {
      const s = c.slot;
      total++;
      lastRecvUs = recvUs;
      if (recvUs >= fromUs && recvUs <= toUs) {
        inWindow++;
        hist.record(recvUs - sentUs);
      }
      let bits = seen[s]!;
      const byte = seq >> 3;
      if (byte >= bits.length) {
        const grown = new Uint8Array(Math.max(bits.length * 2, byte + 64));
        grown.set(bits);
        seen[s] = bits = grown;
      }
      const mask = 1 << (seq & 7);
      if (bits[byte]! & mask) {
        dup++;
        return;
      }
      bits[byte]! |= mask;
      unique[s]!++;
      if (seq < last[s]!) reordered++;
      else last[s] = seq;
    },
    close(c, code) {
      countCode(closeCodes, code);
      if (subscribed[c.slot]) closedAfterReady++;
      else {
        failed++;
        subscribed[c.slot] = 2;
        maybeReady();
        openNext();
      }
    },
  };

  function handle(c: WsConn, ev: DialectEvent) {
    if (!ev) return;
    if (ev.kind === "ready") c.send(dialect.subscribe(`${init.topicPrefix}${topicOf(c.slot)}`, 1));
    else if (ev.kind === "ack" && ev.ref === 1 && !subscribed[c.slot]) {
      subscribed[c.slot] = 1;
      ok++;
      maybeReady();
      openNext();
    } else if (ev.kind === "error") {
      countCode(errors, ev.code);
      // A refused subscribe is a failed slot, not a wait until the ready timeout.
      if (ev.ref === 1 && !subscribed[c.slot]) {
        subscribed[c.slot] = 2;
        failed++;
        maybeReady();
        openNext();
      }
    }
  }

  function openNext() {
    if (next >= n) return;
    const slot = next++;
    const server = init.servers[(init.first + slot) % init.servers.length]!;
    const c = connect({ host: server.host, port: server.port, path: dialect.path, headers: headers(init.cookie) }, handlers);
    c.slot = slot;
    conns[slot] = c;
  }
  for (let i = 0; i < Math.min(init.concurrency, n); i++) openNext();

  let cpu: (() => { cpuMs: number; wallMs: number }) | null = null;
  let progress: Timer | null = null;

  return (m: ToWorker) => {
    if (m.cmd === "start") {
      fromUs = m.fromUs;
      toUs = m.toUs;
      cpu = cpuWindow(fromUs, toUs);
      progress = setInterval(() => {
        const minLast = new Array<number>(topicCount).fill(Infinity);
        for (let s = 0; s < n; s++) {
          if (subscribed[s] !== 1 || !conns[s]!.isOpen) continue;
          const t = topicOf(s) - topicBase;
          if (last[s]! < minLast[t]!) minLast[t] = last[s]!;
        }
        send({ ev: "progress", topicBase, minLast: minLast.map((x) => (x === Infinity ? -1 : x)) });
      }, 20);
    } else if (m.cmd === "finish") {
      // A publish the server refused (an `error` reply, e.g. `unavailable` under overload) is not
      // owed: it is neither expected nor counted lost (it may still arrive: it then counts as
      // delivered, never as a duplicate). Every other stamp up to `expected` must have arrived.
      const refusedOf = (s: number): number[] => m.refused?.[topicOf(s)] ?? [];
      const expectedOf = (s: number) => (m.expected[topicOf(s)] ?? 0) - refusedOf(s).length;
      const missing = (s: number) => {
        const bits = seen[s]!;
        const skip = new Set(refusedOf(s));
        let count = 0;
        for (let seq = 1; seq <= (m.expected[topicOf(s)] ?? 0); seq++) {
          const byte = seq >> 3;
          if (!skip.has(seq) && (byte >= bits.length || !(bits[byte]! & (1 << (seq & 7))))) count++;
        }
        return count;
      };
      const done = () => {
        for (let s = 0; s < n; s++) if (subscribed[s] === 1 && conns[s]!.isOpen && unique[s]! < expectedOf(s)) return false;
        return true;
      };
      const poll = setInterval(() => {
        if (!done() && nowUs() < m.deadlineUs) return;
        clearInterval(poll);
        if (progress) clearInterval(progress);
        let lost = 0;
        let extra = 0;
        let uniq = 0;
        for (let s = 0; s < n; s++) {
          if (subscribed[s] !== 1) continue;
          uniq += unique[s]!;
          lost += missing(s);
          const d = expectedOf(s) - unique[s]!;
          if (d < 0) extra -= d;
        }
        send({
          ev: "result",
          ok, failed, closedAfterReady, closeCodes, errors,
          total, unique: uniq, inWindow, dup, reordered, lost, extra, lastRecvUs,
          hist: hist.toJSON(), cpu: cpu?.(),
        });
      }, 20);
    } else if (m.cmd === "exit") {
      for (const c of conns) c?.terminate();
      process.exit(0);
    }
  };
}

// ---------------------------------------------------------------- pub

function runPub(init: Extract<WorkerInit, { role: "pub" }>) {
  const dialect = DIALECTS[init.target];
  const T = init.topics;
  // P sockets per topic share one stamp sequence, used round-robin; with P > 1 two publications
  // can reach the server in another order than they were numbered, so `reordered` then counts
  // that race as well as the server's own reordering.
  const P = Math.max(1, init.publishers);
  // `pubConns` caps the publisher's sockets (10,000 rooms would otherwise need 10,000 of them, past the
  // open-file limit of a server process): topic t's sockets are then shared with other topics. Each
  // topic still publishes through one socket per stamp sequence slot, so its order is kept.
  const N = init.pubConns !== undefined && init.pubConns > 0 && init.pubConns < T * P ? init.pubConns : T * P;
  const conns: WsConn[] = [];
  const rr = new Uint32Array(T);
  const pick = (t: number) => conns[(t * P + (rr[t]!++ % P)) % N]!;
  const sendBursts = (bursts: Map<WsConn, string[]>) => {
    for (const [c, b] of bursts) c.sendMany(b);
  };
  const queueFrame = (bursts: Map<WsConn, string[]>, t: number, frame: string) => {
    const c = pick(t);
    let b = bursts.get(c);
    if (!b) bursts.set(c, (b = []));
    b.push(frame);
  };
  const sent = new Float64Array(T);
  const inflight = new Float64Array(T);
  const minLast = new Float64Array(T).fill(0);
  const sentAt = new Map<number, number>();
  const refTopic = new Map<number, number>();
  const refSeq = new Map<number, number>();
  /** Per topic, the stamps of publishes refused (e.g. `unavailable`): not owed to subscribers. */
  const refused: number[][] = Array.from({ length: T }, () => []);
  const ackHist = new Histogram();
  const errors: Record<string, number> = {};
  const closeCodes: Record<string, number> = {};
  const pad = "x".repeat(init.payloadBytes);
  let ready = 0;
  let failed = 0;
  let ref = 100;
  let acked = 0;
  /** Acks received between `start`'s countFromUs and countToUs (the orchestrator's CPU sample window). */
  let ackedInCount = 0;
  let countFromUs = Infinity;
  let countToUs = -Infinity;
  let sending = false;
  let stopAtUs = 0;
  let startUs = 0;
  let cursor = 0;

  const canSend = (t: number) => inflight[t]! < init.window && sent[t]! - minLast[t]! < init.lagCap;
  const publishOne = (t: number, now: number) => {
    const r = ref++;
    const seq = ++sent[t]!;
    inflight[t]!++;
    sentAt.set(r, now);
    refTopic.set(r, t);
    refSeq.set(r, seq);
    return dialect.publish(`${init.topicPrefix}${t}`, r, encodeStamp(seq, now, pad));
  };

  /** As fast as allowed: fill every topic's window. */
  const fill = (t: number) => {
    if (!sending) return;
    const now = nowUs();
    if (now >= stopAtUs) return stop();
    const bursts = new Map<WsConn, string[]>();
    while (canSend(t)) queueFrame(bursts, t, publishOne(t, now));
    sendBursts(bursts);
  };

  /** Fixed rate: send what is due, round-robin over topics, skipping full windows. */
  const tick = () => {
    if (!sending) return;
    const now = nowUs();
    if (now >= stopAtUs) return stop();
    let due = Math.floor(((now - startUs) / 1e6) * init.rate) - totalSent();
    const bursts = new Map<WsConn, string[]>();
    for (let tries = 0; due > 0 && tries < T * 4 + due; tries++) {
      const t = cursor++ % T;
      if (!canSend(t)) continue;
      queueFrame(bursts, t, publishOne(t, now));
      due--;
    }
    sendBursts(bursts);
    setTimeout(tick, 1);
  };
  const totalSent = () => sent.reduce((a, b) => a + b, 0);

  let onStopped: (() => void) | null = null;
  const stop = () => {
    if (!sending) return;
    sending = false;
    onStopped?.();
  };

  const handlers: WsHandlers = {
    open(c) {
      handle(c, dialect.open(c));
    },
    text(c, text) {
      handle(c, dialect.text(c, text));
    },
    delivery() {},
    close(_c, code) {
      countCode(closeCodes, code);
      if (ready + failed < N) {
        failed++;
        if (ready + failed === N) send({ ev: "ready", ok: ready, failed, closeCodes, errors });
      }
    },
  };

  function handle(_conn: WsConn, ev: DialectEvent) {
    if (!ev) return;
    if (ev.kind === "ready") {
      ready++;
      if (ready + failed === N) send({ ev: "ready", ok: ready, failed, closeCodes, errors });
    } else if (ev.kind === "ack" || ev.kind === "error") {
      if (ev.kind === "error") countCode(errors, ev.code);
      const at = sentAt.get(ev.ref);
      if (at === undefined) return;
      const t = refTopic.get(ev.ref)!;
      sentAt.delete(ev.ref);
      refTopic.delete(ev.ref);
      const stamp = refSeq.get(ev.ref)!;
      refSeq.delete(ev.ref);
      if (ev.kind === "error") refused[t]!.push(stamp);
      inflight[t]!--;
      if (ev.kind === "ack") {
        const now = nowUs();
        acked++;
        ackHist.record(now - at);
        if (now >= countFromUs && now < countToUs) ackedInCount++;
      }
      if (init.rate === 0) fill(t);
    }
  }

  for (let i = 0; i < N; i++) {
    const server = init.servers[i % init.servers.length]!;
    const c = connect({ host: server.host, port: server.port, path: dialect.path, headers: headers(init.cookie) }, handlers);
    c.slot = i;
    conns[i] = c;
  }

  return (m: ToWorker) => {
    if (m.cmd === "start") {
      const cpu = cpuWindow(m.fromUs - 0, m.toUs);
      startUs = nowUs();
      stopAtUs = m.toUs;
      countFromUs = m.countFromUs ?? Infinity;
      countToUs = m.countToUs ?? -Infinity;
      sending = true;
      onStopped = () => {
        // Let the last acks come back (bounded), then report what was sent.
        const until = nowUs() + 3_000_000;
        const wait = setInterval(() => {
          if (sentAt.size > 0 && nowUs() < until) return;
          clearInterval(wait);
          send({ ev: "result", ready, failed, closeCodes, errors, sent: Array.from(sent), refused, acked, ackedInCount, unacked: sentAt.size, ackHist: ackHist.toJSON(), cpu: cpu() });
        }, 10);
      };
      if (init.rate === 0) {
        for (let t = 0; t < T; t++) fill(t);
        // When every window is blocked on subscriber lag, progress messages restart it; this
        // timer only guarantees the stop time is honoured.
        const guard = setInterval(() => {
          if (!sending) return clearInterval(guard);
          if (nowUs() >= stopAtUs) {
            clearInterval(guard);
            stop();
          }
        }, 5);
      } else tick();
    } else if (m.cmd === "progress") {
      for (let t = 0; t < T && t < m.minLast.length; t++) if (m.minLast[t]! >= 0) minLast[t] = m.minLast[t]!;
      if (init.rate === 0) for (let t = 0; t < T; t++) fill(t);
    } else if (m.cmd === "exit") {
      for (const c of conns) c.terminate();
      process.exit(0);
    }
  };
}

// ---------------------------------------------------------------- connect

function runConnect(init: Extract<WorkerInit, { role: "connect" }>) {
  const dialect = DIALECTS[init.target];
  const hist = new Histogram();
  const closeCodes: Record<string, number> = {};
  const errors: Record<string, number> = {};
  let done = 0;
  let failed = 0;
  let inflight = 0;
  let running = false;
  let toUs = 0;
  let server = 0;
  let finish: (() => void) | null = null;

  const handlers: WsHandlers = {
    open(c) {
      handle(c, dialect.open(c));
    },
    text(c, text) {
      handle(c, dialect.text(c, text));
    },
    delivery() {},
    close(c, code) {
      if (c.phase === 0) {
        c.phase = 2;
        failed++;
        countCode(closeCodes, code);
        inflight--;
        openMore();
      }
    },
  };
  function handle(c: WsConn, ev: DialectEvent) {
    if (!ev) return;
    if (ev.kind === "ready" && c.phase === 0) {
      c.phase = 1;
      const now = nowUs();
      if (now <= toUs) {
        done++;
        hist.record(now - c.startedUs);
      }
      c.close(1000);
      inflight--;
      openMore();
    } else if (ev.kind === "error") countCode(errors, ev.code);
  }
  function openMore() {
    if (!running) return;
    if (nowUs() >= toUs) {
      running = false;
      finish?.();
      return;
    }
    while (inflight < init.concurrency) {
      inflight++;
      const ep = init.servers[server++ % init.servers.length]!;
      connect({ host: ep.host, port: ep.port, path: dialect.path, headers: headers(init.cookie) }, handlers);
    }
  }
  send({ ev: "ready", ok: 1, failed: 0 });
  return (m: ToWorker) => {
    if (m.cmd === "start") {
      toUs = m.toUs;
      const cpu = cpuWindow(m.fromUs, m.toUs);
      running = true;
      const report = () => send({ ev: "result", done, failed, closeCodes, errors, hist: hist.toJSON(), cpu: cpu() });
      finish = () => setTimeout(report, 50);
      const guard = setTimeout(() => {
        if (running) {
          running = false;
          report();
        }
      }, (toUs - nowUs()) / 1000 + 2000);
      guard.unref();
      openMore();
    } else if (m.cmd === "exit") process.exit(0);
  };
}

// ---------------------------------------------------------------- main

let handler: ((m: ToWorker) => void) | null = null;
process.on("message", (m: ToWorker) => {
  if (m.cmd === "init") {
    const init = m.init;
    handler = init.role === "subs" ? runSubs(init) : init.role === "pub" ? runPub(init) : runConnect(init);
  } else if (m.cmd === "exit" && !handler) process.exit(0);
  else handler?.(m);
});
process.on("disconnect", () => process.exit(0));
setInterval(() => {
  if (process.ppid === 1) process.exit(0);
}, 1000).unref();
