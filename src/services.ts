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
  /** Stops everything started here (connections, timers). */
  close(): Promise<void>;
}

/**
 * Services from their parts. `close` releases them in dependency order — presence first (its
 * leaves still go out through the broker and the outbox), the outbox, then the broker, the stores,
 * and `release` last (connections the parts share).
 */
export function assemble(broker: Broker, presence: Presence, stores: Stores, deployment: DeploymentRegistry, release?: () => Promise<void>, outbox: Outbox | null = null): Services {
  const windows = broker.fence === undefined ? undefined : new FenceWindows(broker.fence.windowMs, () => deployment.instances());
  const revocations = new RevocationView(stores.revocations, stores.credentialRevocations, broker.fence, windows);
  windows?.start();
  return {
    broker,
    presence,
    stores: { ...stores, revocations, credentialRevocations: revocations },
    deployment,
    revocations,
    outbox,
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
