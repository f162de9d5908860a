/**
 * The WebSocket frames, client → server as zod schemas (the single source of their types) and
 * server → client as types. The SDK imports the types from here too.
 *
 * Topic names are validated by `authorize()` rather than here, so that a malformed name and a
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

export type ServerFrame =
  | { type: "welcome"; user: User; connectionId: string; instance: string; region: string }
  | { type: "message"; topic: string; seq: number; epoch: string; from: string; data: unknown; ts: number }
  | { type: "presence.join" | "presence.leave"; topic: string; user: User }
  | { type: "resync"; topic: string; seq: number; epoch: string }
  | { type: "presence"; ref?: number; topic: string; members: PresenceMember[] }
  | { type: "pong"; ref?: number }
  | ({ type: "ack"; ref?: number } & Record<string, unknown>)
  | { type: "error"; ref?: number; code: string; message: string };

export type MessageFrame = Extract<ServerFrame, { type: "message" }>;
