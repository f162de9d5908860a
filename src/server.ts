/**
 * Entry: config → services → gateway → Bun.serve({ fetch, websocket }); SIGTERM/SIGINT → drain.
 * A bad configuration exits 1 with one line; a second signal exits at once.
 */
import { ConfigError, loadConfig, type Config } from "./config.ts";
import { loadNamespaces } from "./auth/namespaces.ts";
import { createLogger, errorFields, type Logger } from "./log.ts";
import { createServices } from "./create-services.ts";
import type { Services } from "./services.ts";
import { SessionSigner } from "./auth/sessions.ts";
import { UserDirectory } from "./auth/users.ts";
import { appIdentity, createCredentials } from "./auth/create-credentials.ts";
import { createPermissions } from "./auth/create-permissions.ts";
import { Gateway } from "./gateway/gateway.ts";
import { websocketHandler, type SwitchboardServer } from "./gateway/socket.ts";
import { Metrics } from "./metrics.ts";
import { createFetch } from "./app.ts";
import { metricsApp } from "./http/health.ts";
import { Supervisor, joinSupervisor, workerIndex } from "./cluster.ts";
import { HEARTBEAT_MS, Heartbeat } from "./deployment/heartbeat.ts";
import { RevocationWatch } from "./gateway/revocation-watch.ts";
import { Webhooks } from "./webhooks/webhooks.ts";
import { every } from "./shared-clock.ts";
import type { Outbox } from "./webhooks/outbox.ts";

/** After listening, before the built-in users' passwords are hashed: ready is answered first. */
const HASHING_DELAY_MS = 200;

export interface Running {
  config: Config;
  server: SwitchboardServer;
  gateway: Gateway;
  /** Drains (1012 spread over DRAIN_MS) and releases everything. */
  shutdown(): Promise<void>;
}

/**
 * What keeps this process part of the deployment (SPEC §6): its heartbeat into the registry, and
 * the watch that closes sockets of users revoked while a call to this machine may have been lost.
 */
function startDeploymentDuties(services: Services, gateway: Gateway, log: Logger) {
  const warn = (message: string, fields: Record<string, unknown>) => log.warn(message, fields);
  // Each process tells the others its revocation fence window (auth/fence-windows.ts).
  const fenceMs = services.broker.fence?.windowMs;
  const snapshot = () => {
    const now = gateway.snapshot();
    if (fenceMs !== undefined) now.status.fenceMs = fenceMs;
    return now;
  };
  const heartbeat = new Heartbeat(services.deployment, snapshot, warn, HEARTBEAT_MS, () => (gateway.listed = true));
  const revocations = new RevocationWatch({ store: services.stores.userRevocations, socketsOf: (userId) => gateway.registry.withUser(userId), log: warn });
  heartbeat.start();
  revocations.start();
  return { heartbeat, revocations };
}

/** Who a request is (auth/): the session signer, the built-in users and the one credential check. */
function createAuth(config: Config, services: Services, log: Logger, metrics: Metrics) {
  const signer = new SessionSigner(config.sessionSecret);
  // Hashed later, in the background (users.ts, startSwitchboard).
  const users = UserDirectory.create(config.users);
  const refused = (reason: string, fields: Record<string, unknown>) => {
    metrics.authFailures.inc({ reason });
    log.info("auth failure", { reason, ...fields });
  };
  const credentials = createCredentials(signer, services.stores, refused, appIdentity(config, log));
  return { signer, users, credentials };
}

/** Once a second: expired credentials (ticket sockets included) close within about a second. */
function startSweep(config: Config, gateway: Gateway): () => void {
  const sweepMs = config.maxConnectionAgeS > 0 && config.maxConnectionAgeS < 10 ? 250 : 1000;
  return every(sweepMs, () => gateway.sweep(Date.now()));
}

export async function startSwitchboard(config: Config): Promise<Running> {
  const log = createLogger(config.logLevel, { instance: config.instanceId, region: config.region });
  if (config.sessionSecretGenerated) {
    log.warn("SESSION_SECRET is not set: using a random one; sessions end when this process restarts and are not shared with other processes");
  }
  const metrics = new Metrics({ instance: config.instanceId, region: config.region, broker: config.redisUrl ? "redis" : "memory" });
  const permissions = createPermissions(config, log, metrics);
  const services = await createServices(config, permissions.namespaces);
  const webhooks = createWebhooks(config, services.outbox, log, metrics);
  await webhooks?.start();
  const { signer, users, credentials } = createAuth(config, services, log, metrics);
  const gateway = new Gateway({ config, services, credentials, permissions, log, metrics, webhooks });
  await gateway.start();
  const fetch = createFetch({ config, gateway, services, credentials, signer, users, log, metrics });

  const server = await listen(config, { fetch, websocket: websocketHandler(config, metrics, log), log }, () =>
    Promise.allSettled([webhooks?.stop(), gateway.close(), services.close()]),
  );
  gateway.server = server;
  const metricsServer = listenMetrics(config, metrics, log);
  // Off the path to ready: the default process metrics' module (~50–200 ms: it loads
  // OpenTelemetry's API) is loaded a moment after the first probes; a scrape before that waits.
  setTimeout(() => void metrics.collectDefaults().catch((error) => log.error("default metrics failed", errorFields(error))), 1000).unref();
  // The built-in users' argon2id hashes, once the first probes are answered (users.ts says why; a
  // login before then starts them itself). A failure there is a broken process, said once.
  setTimeout(() => users.ready().catch((error) => log.error("hashing the built-in users' passwords failed", errorFields(error))), HASHING_DELAY_MS).unref();

  const { heartbeat, revocations } = startDeploymentDuties(services, gateway, log);

  const stopSweep = startSweep(config, gateway);

  log.info("listening", { url: `http://${config.host}:${server.port}`, broker: config.redisUrl ? "redis" : "memory", users: users.size });

  let stopping: Promise<void> | null = null;
  return {
    config,
    server,
    gateway,
    shutdown() {
      stopping ??= (async () => {
        stopSweep();
        revocations.stop();
        gateway.draining = true;
        void heartbeat.beat();
        await gateway.drain();
        // Requests in flight (a publish awaiting Redis) may finish; whatever is left is cut.
        await Promise.race([server.stop(false), Bun.sleep(250)]);
        await server.stop(true);
        await metricsServer?.stop(true);
        await gateway.close();
        await heartbeat.stop(config.instanceId);
        // The in-process outbox dies with the process: give its last events (leaves) a moment.
        await webhooks?.stop(config.redisUrl === undefined ? Math.min(500, config.drainMs) : 0);
        // Presence entries removed (other processes hear the leaves), then the broker flushed and closed.
        await services.close();
      })();
      return stopping;
    },
  };
}

/** METRICS_PORT (SPEC §8): `/metrics` alone on its own port (Fly's [metrics] scrapes it privately). */
function listenMetrics(config: Config, metrics: Metrics, log: Logger): ReturnType<typeof Bun.serve> | null {
  if (config.metricsPort === undefined) return null;
  const app = metricsApp({ config, metrics, log });
  try {
    return Bun.serve({ port: config.metricsPort, hostname: config.host, reusePort: config.workers > 1, fetch: (req) => app.fetch(req) });
  } catch (error) {
    throw new Error(`cannot listen on HOST=${config.host} METRICS_PORT=${config.metricsPort}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * Bun.serve on HOST:PORT. A HOST that is not an address of this machine, or a PORT in use,
 * releases what was started (at most 1 s) and throws a sentence naming the variables.
 */
async function listen(
  config: Config,
  handlers: { fetch: (req: Request, server: SwitchboardServer) => Response | Promise<Response | undefined> | undefined; websocket: ReturnType<typeof websocketHandler>; log: Logger },
  release: () => Promise<unknown>,
): Promise<SwitchboardServer> {
  try {
    return Bun.serve({
      port: config.port,
      hostname: config.host,
      reusePort: config.workers > 1,
      fetch: handlers.fetch,
      websocket: handlers.websocket,
      error(error) {
        handlers.log.error("unhandled request error", errorFields(error));
        return Response.json({ error: { code: "internal", message: "internal error" } }, { status: 500 });
      },
    });
  } catch (error) {
    await Promise.race([release(), Bun.sleep(1000)]);
    throw new Error(`cannot listen on HOST=${config.host} PORT=${config.port}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function createWebhooks(config: Config, outbox: Outbox | null, log: Logger, metrics: Metrics): Webhooks | null {
  if (outbox === null || config.webhookUrl === undefined || config.webhookSecret === undefined) return null;
  return new Webhooks({
    outbox,
    url: config.webhookUrl,
    secret: config.webhookSecret,
    maxAgeS: config.webhookMaxAgeS,
    log: log.child({ component: "webhooks" }),
    metrics,
    backoff: { baseMs: config.webhookRetryBaseMs, maxMs: 60_000 },
  });
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
    loadNamespaces(config); // checked here too, so that a bad NAMESPACES stops the supervisor before any worker
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  const log = createLogger(config.logLevel, { instance: config.instanceId, region: config.region });
  if (config.workers > 1 && workerIndex() === null) return supervise(config, log);

  // Handlers go in before start-up: a signal while starting has nothing to drain yet and ends
  // the process with 0 as soon as start-up is over (or at once when it fails).
  let running: Running | null = null;
  let signals = 0;
  let pending: string | null = null;
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("unhandledRejection", (error) => log.error("unhandled rejection", errorFields(error)));
  running = await startSwitchboard(config);
  if (pending !== null) onSignal(pending);

  function onSignal(signal: string): void {
    if (running === null) {
      pending = signal;
      return;
    }
    signals += 1;
    if (signals > 1) {
      log.warn("second signal: exiting now", { signal });
      process.exit(1);
    }
    log.info("draining", { signal, connections: running.gateway.registry.size, drainMs: config.drainMs });
    // The bound operators size kill_timeout by: whatever still hangs then (a Redis that stopped
    // answering) is abandoned; a crashed process's presence entries expire with its lease.
    setTimeout(() => {
      log.warn("drain did not finish within DRAIN_MS + 1 s: exiting now", { drainMs: config.drainMs });
      process.exit(1);
    }, config.drainMs + 900);
    running.shutdown().then(
      () => {
        log.info("drained; exiting");
        process.exit(0);
      },
      (error) => {
        log.error("drain failed", errorFields(error));
        process.exit(1);
      },
    );
  }
  if (workerIndex() !== null) joinSupervisor(running.gateway.metrics, () => onSignal("supervisor gone"));
}

/** WORKERS > 1: run the workers (cluster.ts) and pass them the drain signal. */
function supervise(config: Config, log: ReturnType<typeof createLogger>): void {
  const supervisor = new Supervisor({ workers: config.workers, instanceId: config.instanceId, log, stopTimeoutMs: config.drainMs + 5000 });
  supervisor.start();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      log.warn("second signal: killing workers", { signal });
      supervisor.kill();
      process.exit(1);
    }
    log.info("stopping workers", { signal });
    void supervisor.stop(signal).then((code) => process.exit(code));
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
}

if (import.meta.main) {
  main().catch((error) => {
    console.error(`switchboard failed to start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
