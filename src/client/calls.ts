/**
 * The request-shaped calls of SwitchboardClient (client.ts): the frame each sends, what happens to
 * it when the socket is lost (`resend` or `fail`, requests.ts), and how its reply becomes the
 * promise's value. Also the errors a stopped client settles its callers with.
 */
import { Close } from "../protocol/codes.ts";
import type { PresenceMember } from "../protocol/frames.ts";
import type { StopReason } from "./backoff.ts";
import { SwitchboardClientError } from "./errors.ts";
import type { PublishResult } from "./events.ts";
import type { Outgoing, Request } from "./requests.ts";
import { stringOrUndefined } from "./util.ts";

/** Sends `frame` as a request (the client's `#request`): `ok` on its reply, `fail` on an error. */
export type SendRequest = (frame: Outgoing, onLost: Request["onLost"], ok: Request["ok"], fail: Request["fail"]) => void;

/** `unsubscribe`: resolves on the ack, and also when the client closes before it. */
export function requestUnsubscribe(request: SendRequest, topic: string): Promise<void> {
  return new Promise<void>((resolve, reject) =>
    request({ type: "unsubscribe", topic }, "fail", () => resolve(), (e) => (e.code === "closed" ? resolve() : reject(e))),
  );
}

/** `publish` with idempotency `key`, resent after a reconnect: resolves with its position. */
export function requestPublish(request: SendRequest, topic: string, data: unknown, key: string): Promise<PublishResult> {
  return new Promise((resolve, reject) =>
    request(
      { type: "publish", topic, data, key },
      "resend",
      (ack) => {
        const seq = (ack as { seq?: unknown }).seq;
        resolve({ topic, seq: typeof seq === "number" ? seq : undefined, epoch: stringOrUndefined((ack as { epoch?: unknown }).epoch), key });
      },
      reject,
    ),
  );
}

/** `refresh` on the open socket: resolves with the new expiry (epoch seconds). */
export function requestRefresh(request: SendRequest, token: string): Promise<number | undefined> {
  return new Promise((resolve, reject) =>
    request(
      { type: "refresh", token },
      "fail",
      (ack) => {
        const expiresAt = (ack as { expiresAt?: unknown }).expiresAt;
        resolve(typeof expiresAt === "number" ? expiresAt : undefined);
      },
      reject,
    ),
  );
}

/** `presence`: who is in `topic`, across every machine. */
export function requestPresence(request: SendRequest, topic: string): Promise<PresenceMember[]> {
  return new Promise((resolve, reject) =>
    request({ type: "presence", topic }, "resend", (reply) => resolve(reply.type === "presence" ? reply.members : []), reject),
  );
}

/** What a request made on a closed client rejects with. */
export function closedError(topic?: string): SwitchboardClientError {
  return new SwitchboardClientError("closed", "the client is closed: call connect() first", topic);
}

/** What everything still waiting is settled with when the client stops without reconnecting. */
export function endedError(code: number, reason: string, stop: StopReason): SwitchboardClientError {
  const what = `${code} ${reason}`.trim();
  if (stop === "unauthorized") return new SwitchboardClientError("unauthorized", `the server refused the credentials (${what})`);
  if (code === Close.serverDisconnect && stop === "never") return new SwitchboardClientError("closed", `the server disconnected this client (${what})`);
  return new SwitchboardClientError("closed", `the connection closed with ${what}`);
}
