/**
 * Builds the services for a config: the embedded in-memory ones without REDIS_URL, the Redis ones
 * (loaded only then, so a process without Redis never loads ioredis) with it.
 */
import type { Config } from "./config.ts";
import type { HistoryPolicy } from "./broker/broker.ts";
import type { Namespaces } from "./auth/namespaces.ts";
import { assemble, type Services } from "./services.ts";
import { MemoryBroker } from "./broker/memory.ts";
import { MemoryPresence } from "./presence/memory.ts";
import { memoryStores } from "./stores/memory.ts";
import { MemoryDeploymentRegistry } from "./deployment/memory.ts";
import { LEASE_MS } from "./deployment/heartbeat.ts";
import { MemoryOutbox } from "./webhooks/memory-outbox.ts";

export async function createServices(config: Config, namespaces: Namespaces): Promise<Services> {
  const historyFor = historyLookup(config, namespaces);
  if (config.redisUrl !== undefined) {
    const { createRedisServices } = await import("./redis/services.ts");
    return createRedisServices(config, historyFor);
  }
  const broker = new MemoryBroker({ historySize: config.historySize, historyTtlS: config.historyTtlS, historyFor, historyMaxBytes: config.historyMaxBytes });
  return assemble(broker, new MemoryPresence(), memoryStores(), new MemoryDeploymentRegistry(LEASE_MS), { outbox: config.webhookUrl === undefined ? null : new MemoryOutbox() });
}

/** A topic's history is its namespace's (SPEC §5 `history`); HISTORY_SIZE / HISTORY_TTL_S outside them. */
export function historyLookup(config: Config, namespaces: Namespaces): (topic: string) => HistoryPolicy {
  const fallback: HistoryPolicy = { size: config.historySize, ttlS: config.historyTtlS };
  return (topic) => namespaces.of(topic)?.history ?? fallback;
}
