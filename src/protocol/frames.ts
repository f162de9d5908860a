/**
 * The WebSocket frames, client → server as zod schemas (the single source of their types) and
 * server → client as types. The SDK imports the types from here too.
 *
 * Topic names are validated by `Permissions.authorize()` (auth/permissions.ts) rather than here, so that a malformed name and a
 * forbidden one get the SPEC's two different codes (`bad_request`, `forbidden`) with the `ref`.
 */
import { z } from "zod";

/** A client's correlation number, echoed on the reply. */
const ref = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional();
const topic = z.string().max(1024);

export const Position = z.object({
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  epoch: z.string().min(1).max(64),
});
export type Position = z.infer<typeof Position>;

export const IdempotencyKey = z.string().min(1).max(64);

export const ClientFrame = z.discriminatedUnion("type", [
  z.object({ type: z.literal("auth"), token: z.string().min(1).max(8192) }),
  z.object({ type: z.literal("subscribe"), topic, ref, since: Position.optional() }),
  z.object({ type: z.literal("unsubscribe"), topic, ref }),
  z.object({ type: z.literal("publish"), topic, ref, data: z.unknown(), key: IdempotencyKey.optional() }),
  z.object({ type: z.literal("presence"), topic, ref }),
  z.object({ type: z.literal("ping"), ref }),
  z.object({ type: z.literal("refresh"), token: z.string().min(1).max(8192), ref }),
]);
export type ClientFrame = z.infer<typeof ClientFrame>;
export type ClientFrameType = ClientFrame["type"];

export interface User {
  id: string;
  name: string;
}

export interface PresenceMember {
  user: User;
  /** How many sockets of this user are subscribed, across every machine. */
  connections: number;
}

/** A publication on an ordered topic: `seq` rises by 1 within `epoch` (SPEC §3 "Delivery"). */
export type MessageFrame = { type: "message"; topic: string; seq: number; epoch: string; from: string; data: unknown; ts: number };
/** A publication on an ephemeral topic (SPEC §5 `delivery: "ephemeral"`): no position, no history. */
export type EphemeralMessageFrame = { type: "message"; topic: string; seq?: undefined; epoch?: undefined; from: string; data: unknown; ts: number };

export type ServerFrame =
  | { type: "welcome"; user: User; connectionId: string; instance: string; region: string }
  | MessageFrame
  | EphemeralMessageFrame
  | { type: "presence.join" | "presence.leave"; topic: string; user: User }
  | { type: "resync"; topic: string; seq: number; epoch: string }
  | { type: "presence"; ref?: number; topic: string; members: PresenceMember[] }
  | { type: "pong"; ref?: number }
  /** The credential expires at `expiresAt` (epoch seconds): answer with `refresh` (SPEC §4). */
  | { type: "expiring"; expiresAt: number }
  /** The server subscribed this socket (SPEC §6 `POST /api/subscribe`); `seq`/`epoch`: the topic's position now. */
  | { type: "subscribed"; topic: string; seq?: number; epoch?: string }
  /** The server removed this socket from `topic` (SPEC §6 `POST /api/unsubscribe`). */
  | { type: "unsubscribed"; topic: string; reason: string }
  | ({ type: "ack"; ref?: number } & Record<string, unknown>)
  | { type: "error"; ref?: number; code: string; message: string };
