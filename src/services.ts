/**
 * What the gateway and the HTTP routes run on: a broker, presence and the auth stores, whichever
 * kind (embedded or Redis) create-services.ts picked. Nothing else in the server knows which.
 */
import type { Broker } from "./broker/broker.ts";
import type { Presence } from "./presence/presence.ts";
import type { Stores } from "./stores/stores.ts";
import type { DeploymentRegistry } from "./deployment/registry.ts";
import { RevocationView } from "./auth/revocation-view.ts";
import { FenceWindows } from "./auth/fence-windows.ts";
import type { Outbox } from "./webhooks/outbox.ts";

export interface Services {
  broker: Broker;
  presence: Presence;
  stores: Stores;
  /** Every live process of the deployment and its topics (`/api/topics`, `/api/info`). */
  deployment: DeploymentRegistry;
  /**
   * `stores.revocations` and `stores.credentialRevocations` themselves: revocations known here, kept
   * current by the control channel, and "not revoked" kept behind the broker's fence when it has one.
   */
  revocations: RevocationView;
  /** The webhook outbox (SPEC §6): null unless WEBHOOK_URL is set. */
  outbox: Outbox | null;
  /**
   * Whether the connections of the stores are up (besides the broker's own, `broker.healthy`): on
   * Redis, the data connection (tickets, presence, logouts, the registry) and the auth-reads one
   * (every cookie or token upgrade's revocation read). `/readyz` answers 503 while one is down, so
   * a load balancer sends no socket to a process that would refuse it. Always true without Redis.
   */
  connected(): boolean;
  /** Stops everything started here (connections, timers). */
  close(): Promise<void>;
}

/** What the parts share, when they share anything (the Redis services' connections). */
export interface Shared {
  /** Closes the connections the parts share; called last. */
  release?: () => Promise<void>;
  outbox?: Outbox | null;
  /** `Services.connected`; absent: always true. */
  connected?: () => boolean;
}

/**
 * Services from their parts. `close` releases them in dependency order — presence first (its
 * leaves still go out through the broker and the outbox), the outbox, then the broker, the stores,
 * and `release` last (connections the parts share).
 */
export function assemble(broker: Broker, presence: Presence, stores: Stores, deployment: DeploymentRegistry, shared: Shared = {}): Services {
  const { release, outbox = null, connected = () => true } = shared;
  const windows = broker.fence === undefined ? undefined : new FenceWindows(broker.fence.windowMs, () => deployment.instances());
  const revocations = new RevocationView(stores.revocations, stores.credentialRevocations, broker.fence, windows);
  windows?.start();
  if (windows !== undefined) deployment.watchLive?.((live) => windows.heard(live));
  return {
    broker,
    presence,
    stores: { ...stores, revocations, credentialRevocations: revocations },
    deployment,
    revocations,
    outbox,
    connected,
    async close() {
      windows?.stop();
      await presence.close();
      await outbox?.close();
      await broker.close();
      await stores.close();
      await deployment.close();
      await release?.();
    },
  };
}
