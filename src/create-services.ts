/**
 * Builds the services for a config: the embedded in-memory ones without REDIS_URL, the Redis ones
 * (loaded only then, so a process without Redis never loads ioredis) with it.
 */
import type { Config } from "./config.ts";
import { assemble, type Services } from "./services.ts";
import { MemoryBroker } from "./broker/memory.ts";
import { MemoryPresence } from "./presence/memory.ts";
import { memoryStores } from "./stores/memory.ts";
import { MemoryDeploymentRegistry } from "./deployment/memory.ts";
import { LEASE_MS } from "./deployment/heartbeat.ts";
import { MemoryOutbox } from "./webhooks/memory-outbox.ts";

export async function createServices(config: Config): Promise<Services> {
  if (config.redisUrl !== undefined) {
    const { createRedisServices } = await import("./redis/services.ts");
    return createRedisServices(config);
  }
  const broker = new MemoryBroker({ historySize: config.historySize, historyTtlS: config.historyTtlS, historyMaxBytes: config.historyMaxBytes });
  return assemble(broker, new MemoryPresence(), memoryStores(), new MemoryDeploymentRegistry(LEASE_MS), undefined, config.webhookUrl === undefined ? null : new MemoryOutbox());
}
