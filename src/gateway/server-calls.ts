/**
 * Server-side calls that act on a user's sockets on every machine (SPEC §6 `/api/subscribe`,
 * `/api/unsubscribe`, `/api/disconnect`): a request/reply over the broker's control channel.
 *
 * The process that took the HTTP call publishes `{type:"call", id, from, call}`; every process
 * (itself included: it hears its own control messages) acts on its local sockets and publishes
 * `{type:"call-reply", id, to, instance, sockets}`. The caller sums the replies and answers as
 * soon as every process the deployment registry lists has replied, or after `deadlineMs` (1 s)
 * with what it has, naming the processes that did not reply in `unanswered`.
 *
 * A process that does not reply in time (crashed but still within its registry lease, its Redis
 * link down, or simply slower than the deadline) still acts if and when the call reaches it;
 * its sockets are just not counted. Pub/sub is at-most-once: a process whose link to Redis is
 * down when the call is published never hears it. For `disconnect` with `revoke` that is
 * covered anyway — the revocation is stored in Redis before the call goes out, so those sockets'
 * credentials are refused when they reconnect, and revocation-watch.ts closes the open ones — but
 * a server-side subscribe may have to be repeated; `unanswered` says when.
 *
 * `actOnSockets` is what every process does with a call it hears: the gateway passes it its sockets
 * of the user.
 */
import type { Broker, ControlMessage } from "../broker/broker.ts";
import type { DeploymentRegistry } from "../deployment/registry.ts";
import type { SocketsAnswer, UserCall } from "../protocol/api.ts";
import { Close } from "../protocol/codes.ts";
import type { Namespace } from "../auth/namespaces.ts";
import type { Socket } from "./connection-host.ts";

export type { UserCall };

export type CallMessage = Extract<ControlMessage, { type: "call" | "call-reply" }>;

export interface ServerCallsOptions {
  broker: Broker;
  deployment: DeploymentRegistry;
  instanceId: string;
  /** Acts on this process's sockets; resolves with how many it acted on. */
  act(call: UserCall): Promise<number>;
  deadlineMs?: number;
  log(message: string, fields: Record<string, unknown>): void;
}

interface Pending {
  sockets: number;
  answered: Set<string>;
  expected: Set<string>;
  done(): void;
}

/** The longest a caller waits for the other machines (the SPEC's "within 1 s"). */
export const CALL_DEADLINE_MS = 1000;

export class ServerCalls {
  private readonly pending = new Map<string, Pending>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  /** Per incarnation, so replies meant for a predecessor with the same INSTANCE_ID are not taken. */
  private readonly address: string;

  constructor(private readonly options: ServerCallsOptions) {
    this.address = `${options.instanceId}.${crypto.randomUUID().slice(0, 8)}`;
  }

  /** Runs a call on every machine; rejects with `unavailable` when the control channel is down. */
  async run(call: UserCall): Promise<SocketsAnswer> {
    const { broker, deployment, instanceId } = this.options;
    const expected = new Set((await deployment.instances()).map((i) => i.id));
    expected.add(instanceId);
    const id = crypto.randomUUID();
    const entry: Pending = { sockets: 0, answered: new Set(), expected, done: () => {} };
    const finished = new Promise<void>((resolve) => (entry.done = resolve));
    this.pending.set(id, entry);
    const timer = setTimeout(entry.done, this.options.deadlineMs ?? CALL_DEADLINE_MS);
    this.timers.add(timer);
    try {
      await broker.sendControl({ type: "call", id, from: this.address, call });
      await finished;
    } finally {
      clearTimeout(timer);
      this.timers.delete(timer);
      this.pending.delete(id);
    }
    const unanswered = [...expected].filter((i) => !entry.answered.has(i)).sort();
    return unanswered.length === 0 ? { sockets: entry.sockets } : { sockets: entry.sockets, unanswered };
  }

  /** The gateway hands every `call` and `call-reply` control message here. */
  onControl(message: CallMessage): void {
    if (message.type === "call") {
      void this.answer(message.id, message.from, message.call);
      return;
    }
    if (message.to !== this.address) return;
    const entry = this.pending.get(message.id);
    if (entry === undefined || entry.answered.has(message.instance)) return;
    entry.answered.add(message.instance);
    entry.sockets += message.sockets;
    if ([...entry.expected].every((i) => entry.answered.has(i))) entry.done();
  }

  private async answer(id: string, to: string, call: UserCall): Promise<void> {
    const { broker, instanceId, log } = this.options;
    let sockets = 0;
    try {
      sockets = await this.options.act(call);
    } catch (error) {
      log("server call failed here", { op: call.op, error: error instanceof Error ? error.message : String(error) });
    }
    await broker.sendControl({ type: "call-reply", id, to, instance: instanceId, sockets }).catch((error: unknown) => {
      log("server call reply not sent", { op: call.op, error: error instanceof Error ? error.message : String(error) });
    });
  }

  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const entry of this.pending.values()) entry.done();
  }
}

/**
 * A server API call on this process's open sockets of the user; resolves with how many it acted on:
 * subscribe — the open sockets now subscribed (each newly subscribed one was sent `subscribed`);
 * unsubscribe — those that were subscribed; disconnect — those closed with 4003.
 */
export async function actOnSockets(sockets: Socket[], call: UserCall, namespaceOf: (topic: string) => Namespace | null): Promise<number> {
  const conns = sockets.filter((conn) => conn.isOpen);
  switch (call.op) {
    case "disconnect":
      for (const conn of conns) conn.close(Close.serverDisconnect, call.revoke ? "disconnected and revoked by the server" : "disconnected by the server");
      return conns.length;
    case "subscribe": {
      const ns = namespaceOf(call.topic);
      if (ns === null) return 0; // the API checked the topic on the machine that took the call
      const done = await Promise.all(conns.map((conn) => conn.serverSubscribe(call.topic, ns)));
      return done.filter(Boolean).length;
    }
    case "unsubscribe":
      return conns.filter((conn) => conn.serverUnsubscribe(call.topic)).length;
  }
}
