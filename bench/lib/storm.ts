/**
 * The `storm` scenario (issue 17): `--storm-conns` SDK clients (bench/storm-worker.ts, in
 * `--gen-procs` processes) on process A, subscribed to `--storm-topics` topics, plus
 * `--storm-bystanders` clients on B. A publisher posts `--storm-rate` msg/s in total to the
 * topics through B's HTTP API all along (`--storm-publisher socket`: over a WebSocket opened on B
 * before the storm, each message stamped when it was due). A is killed with SIGKILL; the clients reconnect to B as
 * the SDK does (its own jittered backoff) and resume with `since`.
 *
 * Each storm client presents a session of its own (`--storm-sessions distinct`, default) or all
 * present the bench's one login (`shared`, rounds three to six).
 *
 * Reported: time from the kill until every client resumed, the p50/p99 of each client's link
 * drop → resumed, how many resumed with recovered:true, messages lost / duplicated (per client,
 * by seq), closes with 1013 (shed), B's history reads per topic for the whole storm
 * (switchboard_history_reads_total{reason="since"}), and the delivery latency p99 of the
 * bystanders (already on B) during the storm.
 *
 * Socket.IO (bench/servers/socketio.mjs with SIO_RECOVERY=1, clients in storm-worker-sio.ts): the
 * same storm with Socket.IO's connection-state recovery over the Redis Streams adapter, publishing
 * through B's `POST /pub`. "Resumed" is the client's reconnect `connect` (recovered or not; a client
 * that was not recovered has joined its room again); history reads are not counted.
 */
import { procs, spawnWorker, startRedis, startServers, SWITCHBOARD_API_KEY, SWITCHBOARD_SECRET, type Worker } from "./cluster.ts";
import type { TargetName } from "./dialects.ts";
import type { Metrics, RunOptions } from "./scenarios.ts";
import { Histogram } from "./histogram.ts";

export interface StormOptions {
  conns: number;
  topics: number;
  bystanders: number;
  rate: number;
  /**
   * How messages reach B during the storm: `api` (default, rounds three to five) POSTs to B's HTTP API,
   * each stamped when sent; a POST that falls behind opens a new connection, which waits in B's listen
   * queue behind the storm's connects. `socket` publishes over one WebSocket opened on B before the
   * storm, each stamped when it was due, so every wait inside B counts and nothing waits for a connection.
   */
  publisher: "api" | "socket";
  /**
   * Whose session each storm client presents (Switchboard only): `distinct` (default) gives every
   * client a session of its own, signed before the storm by its generator with the servers'
   * SESSION_SECRET exactly as `/auth/login` signs one (src/auth/sessions.ts), so B verifies and
   * checks 10,000 sessions as it would for 10,000 users' browsers. `shared` is rounds three to six:
   * every client presents the one cookie of the bench's login, which a server may verify and
   * judge once for the whole storm. Bystanders and the socket publisher keep the login's cookie.
   */
  sessions: "distinct" | "shared";
  /** How A goes away: SIGKILL (the crash, default) or SIGTERM (a graceful stop: Switchboard drains with 1012, Socket.IO closes its sockets and persists their sessions). */
  signal: "KILL" | "TERM";
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function historyReads(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith('switchboard_history_reads_total{reason="since"}'));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

/** Posts `rate` msg/s round-robin over the topics until stopped; each carries its send time. */
function publisher(url: string, topics: number, rate: number, target: TargetName): { stop(): Promise<number>; lastSeq: Map<string, number> } {
  let running = true;
  let sent = 0;
  const lastSeq = new Map<string, number>();
  const loop = (async () => {
    const started = performance.now();
    while (running) {
      const due = Math.floor(((performance.now() - started) / 1000) * rate);
      const batch: Promise<unknown>[] = [];
      for (; sent < due; sent++) {
        const topic = `room:storm-${sent % topics}`;
        const body = JSON.stringify({ topic, data: { t: Date.now() } });
        const posted =
          target === "socketio"
            ? fetch(`${url}/pub`, { method: "POST", headers: { "Content-Type": "application/json" }, body })
            : fetch(`${url}/api/publish`, { method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${SWITCHBOARD_API_KEY}` }, body });
        batch.push(posted.then((r) => r.json()).then((j: { seq?: number }) => lastSeq.set(topic, Math.max(lastSeq.get(topic) ?? 0, j.seq ?? 0))).catch(() => {}));
      }
      await Promise.all(batch);
      await sleep(10);
    }
  })();
  return { stop: async () => ((running = false), await loop, sent), lastSeq };
}

/**
 * Publishes `rate` msg/s round-robin over the topics until stopped, over one WebSocket to B that is
 * open before the storm (a socket of B already connected). Each message carries the time it was
 * due, not the time it left: a publisher held back by B counts that wait in the bystanders' latency.
 */
async function socketPublisher(url: string, cookie: string, topics: number, rate: number): Promise<{ stop(): Promise<number>; lastSeq: Map<string, number> }> {
  const lastSeq = new Map<string, number>();
  const ws = new WebSocket(url, { headers: { Cookie: cookie } } as unknown as string[]);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("storm publisher: no welcome from B")), 10_000);
    ws.addEventListener("message", function welcome(ev) {
      if (String(ev.data).startsWith('{"type":"welcome"')) {
        ws.removeEventListener("message", welcome);
        clearTimeout(timer);
        resolve();
      }
    });
    ws.addEventListener("error", () => reject(new Error("storm publisher: the socket to B failed")));
  });
  ws.addEventListener("message", (ev) => {
    const frame = JSON.parse(String(ev.data)) as { type: string; topic?: string; seq?: number };
    if (frame.type === "ack" && frame.topic !== undefined && frame.seq !== undefined) lastSeq.set(frame.topic, Math.max(lastSeq.get(frame.topic) ?? 0, frame.seq));
  });
  let running = true;
  let sent = 0;
  const startedEpoch = Date.now();
  const started = performance.now();
  const loop = (async () => {
    while (running) {
      const due = Math.floor(((performance.now() - started) / 1000) * rate);
      for (; sent < due; sent++) {
        const topic = `room:storm-${sent % topics}`;
        ws.send(JSON.stringify({ type: "publish", ref: sent + 1, topic, data: { t: Math.round(startedEpoch + (sent * 1000) / rate) } }));
      }
      await sleep(10);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      await sleep(500); // the last acks
      ws.close();
      return sent;
    },
    lastSeq,
  };
}

export async function runStorm(target: TargetName, o: RunOptions, s: StormOptions): Promise<Metrics> {
  if (target === "limit" || target === "limit-spec") return { note: "n/a" };
  const sio = target === "socketio";
  const redis = await startRedis();
  const servers = await startServers(target, 2, redis.url, { ...o.start, sioEnv: { SIO_RECOVERY: "1" } });
  const [a, b] = servers.endpoints.map((e) => `http://${e.host}:${e.port}`) as [string, string];
  const ws = (http: string) => (sio ? http : `${http.replace("http", "ws")}/ws`);
  const worker = sio ? "storm-worker-sio.ts" : "storm-worker.ts";
  const workers: Worker[] = [];
  let bystanderProc: Worker["proc"] | undefined;
  try {
    const per = Math.ceil(s.conns / o.genProcs);
    for (let first = 0; first < s.conns; first += per) {
      const w = spawnWorker(worker);
      const sessionSecret = !sio && s.sessions === "distinct" ? SWITCHBOARD_SECRET : undefined;
      w.send({ cmd: "init", init: { role: "storm", url: ws(a), cookie: servers.cookie, sessionSecret, first, count: Math.min(per, s.conns - first), topics: s.topics } });
      workers.push(w);
    }
    const bystander = spawnWorker(worker);
    bystanderProc = bystander.proc;
    bystander.send({ cmd: "init", init: { role: "bystander", url: ws(b), cookie: servers.cookie, first: 0, count: s.bystanders, topics: s.topics } });
    const ready = await Promise.all([...workers, bystander].map((w) => w.next("ready", 120_000)));
    const failed = ready.reduce((n, r) => n + r.failed, 0);
    const pub = s.publisher === "socket" && !sio ? await socketPublisher(ws(b), servers.cookie ?? "", s.topics, s.rate) : publisher(b, s.topics, s.rate, target);
    await sleep(2000);
    const readsBefore = sio ? NaN : await historyReads(b);
    for (const w of workers) w.send({ cmd: "target", url: ws(b) });
    await sleep(50);
    const killedAt = performance.now();
    if (s.signal === "TERM") servers.procs[0]!.kill("SIGTERM");
    else procs.kill(servers.procs[0]!);
    let reports: any[] = [];
    let allResumedMs = NaN;
    while (performance.now() - killedAt < 60_000) {
      await sleep(200);
      for (const w of workers) w.send({ cmd: "report" });
      reports = await Promise.all(workers.map((w) => w.next("report", 30_000)));
      if (reports.reduce((n, r) => n + r.resumed, 0) >= s.conns - failed) {
        allResumedMs = performance.now() - killedAt;
        break;
      }
    }
    await sleep(1500); // live traffic after the resume, to count what is lost
    const published = await pub.stop();
    await sleep(1000);
    const readsAfter = sio ? NaN : await historyReads(b);
    for (const w of [...workers, bystander]) w.send({ cmd: "report" });
    reports = await Promise.all(workers.map((w) => w.next("report", 30_000)));
    const by = await bystander.next("report", 30_000);
    const resume = reports.flatMap((r) => r.resumeMs as number[]).sort((x, y) => x - y);
    const q = (f: number) => (resume.length ? Math.round(resume[Math.min(resume.length - 1, Math.floor(f * resume.length))]!) : NaN);
    const codes: Record<string, number> = {};
    for (const r of reports) for (const [k, v] of Object.entries(r.closeCodes as Record<string, number>)) codes[k] = (codes[k] ?? 0) + v;
    const lat = new Histogram().merge(by.latency).summaryMs();
    // Tail loss: a client whose last seq is short of its topic's last publication.
    let behind = 0;
    for (const r of [...reports, by]) for (const [topic, last] of Object.entries(r.minLast as Record<string, number>)) if (last < (pub.lastSeq.get(topic) ?? 0)) behind++;
    return {
      conns: s.conns, topics: s.topics, connectFailed: failed, published,
      allResumedMs: Math.round(allResumedMs),
      p50: q(0.5), p99: q(0.99), max: resume.at(-1) === undefined ? NaN : Math.round(resume.at(-1)!),
      resumed: reports.reduce((n, r) => n + r.resumed, 0),
      recoveredTrue: reports.reduce((n, r) => n + r.recoveredTrue, 0),
      recoveredFalse: reports.reduce((n, r) => n + r.recoveredFalse, 0),
      lost: reports.reduce((n, r) => n + r.lost, 0) + by.lost,
      duplicated: reports.reduce((n, r) => n + r.duplicated, 0) + by.duplicated,
      shed1013: codes["1013"] ?? 0,
      topicsBehind: behind,
      historyReadsPerTopic: Math.round(((readsAfter - readsBefore) / s.topics) * 100) / 100,
      bystanderP99: lat.p99, bystanderMax: lat.max,
      closeCodes: JSON.stringify(codes),
    };
  } finally {
    for (const w of workers) w.send({ cmd: "exit" });
    await sleep(100);
    for (const w of workers) procs.kill(w.proc);
    procs.kill(bystanderProc);
    for (const p of servers.procs) procs.kill(p);
    procs.kill(redis.proc);
  }
}
