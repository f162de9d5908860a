/**
 * The server API's bodies, queries and answers (SPEC §6): zod schemas for what the server reads,
 * types for what it answers. The server (http/api.ts) validates with them; the server SDK
 * (server-sdk/) takes its parameter and return types from here, so the two cannot drift.
 * Topic names are checked by `authorize()` (malformed → bad_request, outside every namespace →
 * forbidden), not here, as on the WebSocket.
 */
import { z } from "zod";
import { Caps } from "../auth/caps.ts";
import { USER_ID, USER_ID_RULE } from "../auth/claims.ts";
import { IdempotencyKey, type MessageFrame, type PresenceMember, type User } from "./frames.ts";
import type { ErrorCode } from "./codes.ts";

const topic = z.string().max(1024);
/**
 * A user id as the app's identity provider spells it (`auth0|64f1c2`, `ana@example.com`), under
 * the one rule every identity source keeps (app tokens, connect answers, USERS): its inbox
 * `user:<id>` must be a valid topic, or the socket could never be sent a direct message.
 */
const userId = z.string().regex(USER_ID, { error: USER_ID_RULE });
const UserObject = z.object({ id: userId, name: z.string().min(1).max(256) });

/** `broadcast` takes at most this many topics per call. */
export const MAX_BROADCAST_TOPICS = 1000;
/** `/api/tokens`: the longest lifetime a minted token may have (24 h). */
export const MAX_TOKEN_TTL_S = 86_400;
/** `history` and `topics`: the largest `limit`, and the default. */
export const MAX_LIMIT = 1000;
export const DEFAULT_LIMIT = 100;

export const PublishBody = z.strictObject({ topic, data: z.unknown(), key: IdempotencyKey.optional() });
export type PublishBody = z.input<typeof PublishBody>;

export const BroadcastBody = z.strictObject({
  topics: z
    .array(topic)
    .min(1, { error: "topics must list at least one topic" })
    .max(MAX_BROADCAST_TOPICS, { error: `topics may list at most ${MAX_BROADCAST_TOPICS} topics` }),
  data: z.unknown(),
  key: IdempotencyKey.optional(),
});
export type BroadcastBody = z.input<typeof BroadcastBody>;

export const UserTopicBody = z.strictObject({ user: userId, topic });
export type UserTopicBody = z.input<typeof UserTopicBody>;

export const DisconnectBody = z.strictObject({ user: userId, revoke: z.boolean().optional() });
export type DisconnectBody = z.input<typeof DisconnectBody>;

export const TicketBody = z.strictObject({ user: UserObject, caps: Caps.optional() });
export type TicketBody = z.input<typeof TicketBody>;

export const TokenBody = z.strictObject({
  user: UserObject,
  caps: Caps.optional(),
  ttlS: z
    .number()
    .int({ error: "ttlS must be a whole number of seconds" })
    .min(1, { error: "ttlS must be at least 1" })
    .max(MAX_TOKEN_TTL_S, { error: `ttlS must be at most ${MAX_TOKEN_TTL_S} (24 h)` })
    .optional(),
});
export type TokenBody = z.input<typeof TokenBody>;

/**
 * A whole number in a query string: decimal digits only. `Number()` would read `since=` (and
 * `%20`) as 0 — the oldest kept messages where the caller meant no `since` — and `0x10` or `1e2`
 * as numbers nobody wrote.
 */
const wholeNumber = (name: string) =>
  z
    .string()
    .regex(/^\d{1,16}$/, { error: `${name} must be a whole number` })
    .transform(Number);

const limit = wholeNumber("limit")
  .pipe(z.number().min(1, { error: "limit must be at least 1" }).max(MAX_LIMIT, { error: `limit must be at most ${MAX_LIMIT}` }))
  .default(DEFAULT_LIMIT);

export const HistoryQuery = z
  .object({
    since: wholeNumber("since")
      .pipe(z.number().max(Number.MAX_SAFE_INTEGER, { error: "since must be a whole number" }))
      .optional(),
    epoch: z.string().min(1, { error: "epoch must not be empty" }).max(64, { error: "epoch is at most 64 characters" }).optional(),
    limit,
  })
  .refine((q) => q.epoch === undefined || q.since !== undefined, { error: "epoch needs since" });
export type HistoryQuery = { since?: number; epoch?: string; limit?: number };

export const TopicsQuery = z.object({ prefix: z.string().max(128).default(""), limit });
export type TopicsQuery = { prefix?: string; limit?: number };

/** What `/api/subscribe`, `/api/unsubscribe` and `/api/disconnect` ask of every machine. */
export type UserCall =
  | { op: "subscribe"; user: string; topic: string }
  | { op: "unsubscribe"; user: string; topic: string }
  | { op: "disconnect"; user: string; revoke: boolean };

// ── Answers ─────────────────────────────────────────────────────────────────

export interface PublishAnswer {
  topic: string;
  /** Absent for a topic of an ephemeral namespace (SPEC §5): it has no position. */
  seq?: number;
  epoch?: string;
}
export interface ApiErrorBody {
  code: ErrorCode | string;
  message: string;
}
export interface BroadcastAnswer {
  results: (PublishAnswer | { topic: string; error: ApiErrorBody })[];
}
export interface HistoryAnswer {
  topic: string;
  epoch: string;
  /** The topic's latest publication. */
  seq: number;
  recovered: boolean;
  messages: MessageFrame[];
}
export interface PresenceAnswer {
  topic: string;
  members: PresenceMember[];
}
export interface PresenceStatsAnswer {
  topic: string;
  users: number;
  connections: number;
}
export interface SocketsAnswer {
  /** The sockets the call acted on, on every machine that answered in time. */
  sockets: number;
  /**
   * Processes the deployment lists that did not reply within 1 s (absent when all did): their
   * sockets are not counted, and they act only if and when the call reaches them.
   */
  unanswered?: string[];
}
export interface TicketAnswer {
  ticket: string;
  expiresIn: number;
}
export interface TokenAnswer {
  token: string;
  expiresIn: number;
}
export interface TopicsAnswer {
  topics: { topic: string; subscribers: number }[];
}
export interface InstanceInfo {
  id: string;
  region: string;
  connections: number;
  topics: number;
  /** Epoch milliseconds. */
  startedAt: number;
  draining: boolean;
  /**
   * Internal, never in `/api/info`: the process's revocation fence window (REVOCATION_FENCE_MS)
   * while its fence is on; absent when it has none (auth/fence-windows.ts).
   */
  fenceMs?: number;
}
export interface InfoAnswer {
  instances: InstanceInfo[];
}

export type { User };
