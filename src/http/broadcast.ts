/**
 * `POST /api/broadcast` (SPEC §6): one publication per listed topic, answered per topic in the
 * order given. A body too large in all is refused whole (nothing published); a malformed,
 * forbidden or repeated topic gets its own error entry while the others publish.
 */
import type { PublishInput, PublishResult } from "../broker/broker.ts";
import type { z } from "zod";
import type { BroadcastAnswer, BroadcastBody } from "../protocol/api.ts";
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";

/**
 * A broadcast stores and sends its data once per topic: past this many bytes in all (data ×
 * topics) it is refused whole with 413, so one request cannot make Redis hold gigabytes.
 */
export const BROADCAST_MAX_BYTES = 64 * 1024 * 1024;

/** Publishes of one broadcast in flight at once (the broker pipelines them). */
const CONCURRENCY = 100;

/** Resolves with null for an ephemeral topic (no position). */
type Publish = (topic: string, input: PublishInput) => Promise<PublishResult | null>;
/** The server's permission check (auth/permissions.ts `asServer`): throws bad_request or forbidden. */
type Check = (topic: string) => void;

function errorEntry(topic: string, error: unknown): { topic: string; error: { code: string; message: string } } {
  const e = error instanceof SwitchboardError ? error : new SwitchboardError(ErrorCode.internal, "internal error");
  return { topic, error: { code: e.code, message: e.message } };
}

export async function broadcast(body: z.output<typeof BroadcastBody>, publish: Publish, check: Check): Promise<BroadcastAnswer> {
  const bytes = (JSON.stringify(body.data) ?? "null").length * body.topics.length;
  if (bytes > BROADCAST_MAX_BYTES) {
    throw new SwitchboardError(ErrorCode.tooLarge, `data × topics is ${bytes} bytes, over ${BROADCAST_MAX_BYTES}: split the broadcast`);
  }
  const results: BroadcastAnswer["results"] = new Array(body.topics.length);
  const seen = new Set<string>();
  const jobs: (() => Promise<void>)[] = [];
  body.topics.forEach((topic, i) => {
    try {
      check(topic);
      if (seen.has(topic)) throw new SwitchboardError(ErrorCode.badRequest, "topic listed twice; published once");
      seen.add(topic);
    } catch (error) {
      results[i] = errorEntry(topic, error);
      return;
    }
    jobs.push(async () => {
      try {
        const r = await publish(topic, { from: "server", data: body.data, ts: Date.now(), key: body.key });
        results[i] = r === null ? { topic } : { topic, seq: r.seq, epoch: r.epoch };
      } catch (error) {
        results[i] = errorEntry(topic, error);
      }
    });
  });
  for (let i = 0; i < jobs.length; i += CONCURRENCY) {
    await Promise.all(jobs.slice(i, i + CONCURRENCY).map((job) => job()));
  }
  return { results };
}
