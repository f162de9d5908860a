/**
 * Builds the broker, presence and stores for a config: the embedded in-memory ones without
 * REDIS_URL, the Redis ones with it. Nothing else in the server knows which kind runs.
 */
import type { Config } from "./config.ts";
import type { Broker } from "./broker/broker.ts";
import type { Presence } from "./presence/presence.ts";
import type { Stores } from "./stores/stores.ts";
import { MemoryBroker } from "./broker/memory.ts";
import { MemoryPresence } from "./presence/memory.ts";
import { memoryStores } from "./stores/memory.ts";

export interface Services {
  broker: Broker;
  presence: Presence;
  stores: Stores;
  /** Stops everything started here (connections, timers). */
  close(): Promise<void>;
}

export async function createServices(config: Config): Promise<Services> {
  if (config.redisUrl !== undefined) {
    const { createRedisServices } = await import("./services-redis.ts");
    return createRedisServices(config);
  }
  const broker = new MemoryBroker({ historySize: config.historySize, historyTtlS: config.historyTtlS, historyMaxBytes: config.historyMaxBytes });
  return assemble(broker, new MemoryPresence(), memoryStores());
}

/**
 * Services from their parts. `close` releases them in dependency order — presence first (its
 * leaves still go out through the broker), then the broker, the stores, and `release` last
 * (connections the parts share).
 */
export function assemble(broker: Broker, presence: Presence, stores: Stores, release?: () => Promise<void>): Services {
  return {
    broker,
    presence,
    stores,
    async close() {
      await presence.close();
      await broker.close();
      await stores.close();
      await release?.();
    },
  };
}
