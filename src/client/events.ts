/** What a SwitchboardClient tells the application: its states, events and results. */
import type { ServerFrame } from "../protocol/frames.ts";
import type { SwitchboardClientError } from "./errors.ts";
import type { Message, PresenceEvent, ResyncInfo, UnsubscribedInfo } from "./subscription.ts";

export type Welcome = Omit<Extract<ServerFrame, { type: "welcome" }>, "type">;

/**
 * - `idle`: created with autoConnect false, connect() not called yet (requests queue);
 * - `connecting`: an attempt is under way (credentials, upgrade, auth, welcome);
 * - `open`: welcomed; requests flow;
 * - `reconnecting`: waiting out a backoff delay before the next attempt (requests queue);
 * - `closed`: stopped by close(), by 4001, by 4003 or by a fatal close code; connect() starts again.
 */
export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface ClientEvents {
  /**
   * An attempt starts; `attempt` counts consecutive failures before it: 0 after a connection that
   * stayed open `reconnect.stableMs`.
   */
  connecting: { attempt: number };
  /** Welcomed: subscriptions have been re-sent with `since` and queued requests flushed. */
  open: Welcome;
  /** A socket ended (or an attempt failed); `reconnect` says whether another attempt follows. */
  closed: { code: number; reason: string; reconnect: boolean };
  /** The next attempt starts in `delay` ms. */
  reconnecting: { delay: number; attempt: number; code: number };
  /**
   * The credentials were refused and the SDK cannot get better ones by itself (4001 without
   * `getToken`, a token refused twice in a row, or a credentials callback that said so):
   * re-authenticate, then connect().
   */
  unauthorized: { code: number; reason: string };
  /** The server disconnected this client (close 4003, `POST /api/disconnect`): the SDK does not reconnect; connect() does. */
  disconnected: { code: number; reason: string };
  /** The credential expires at `expiresAt` (epoch seconds). With `getToken` the SDK refreshes it on the same socket. */
  expiring: { expiresAt: number };
  /** A refresh was accepted: same socket, same subscriptions; the new credential expires at `expiresAt`. */
  refreshed: { expiresAt: number | undefined };
  /** The server subscribed this client to `topic` (SPEC §6): its messages arrive as `message` events, resumed across reconnects. */
  subscribed: { topic: string; seq: number | undefined; epoch: string | undefined };
  /** The server removed this client from `topic`: not resubscribed on reconnect (also given to the subscription's onUnsubscribed). */
  unsubscribed: UnsubscribedInfo;
  /** A topic lost continuity (also given to the subscription's onResync). */
  resync: ResyncInfo;
  /** A message on a topic without an application Subscription (the personal inbox, a topic the server subscribed). */
  message: Message;
  presence: PresenceEvent;
  /** An `error` frame without a request, a failed credentials callback or refresh, a refused resubscription. */
  error: SwitchboardClientError;
}

export type Emit = <K extends keyof ClientEvents>(event: K, payload: ClientEvents[K]) => void;

export interface PublishResult {
  topic: string;
  /** The publication's position; undefined on an ephemeral topic (SPEC §5), which has none. */
  seq: number | undefined;
  /** The topic's epoch, when the server's ack carries it. */
  epoch: string | undefined;
  /** The idempotency key sent with the publication. */
  key: string;
}

/** What `getToken` is asked for: `connect` (a new socket), `expiring` (an in-band refresh), `unauthorized` (the last token was refused with 4001: do not hand out a cached one). */
export interface TokenRequest {
  reason: "connect" | "expiring" | "unauthorized";
}
