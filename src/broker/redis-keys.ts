/**
 * Key and channel names of the Redis broker, and the channel payload format. Every key of a topic
 * shares the hash tag `{topic}` with the topic's channel, so one script touches one slot and the
 * channel's shard is the keys' shard (SPUBLISH from the script on Redis Cluster).
 */
import type { Publication } from "./broker.ts";

export const redisKeys = {
  meta: (topic: string) => `sb:{${topic}}:meta`,
  log: (topic: string) => `sb:{${topic}}:log`,
  idempotency: (topic: string, key: string) => `sb:{${topic}}:key:${key}`,
  channel: (topic: string) => `sb:{${topic}}:ch`,
  control: "sb:control",
  canary: (instance: string) => `sb:canary:${instance}`,
  /** A canary channel of its own slot (Cluster): `n` is chosen so the slot lands on a given primary. */
  shardCanary: (instance: string, n: number) => `sb:{canary:${instance}:${n}}`,
};

const CHANNEL_HEAD = "sb:{";
const CHANNEL_TAIL = "}:ch";

/** The topic of a topic channel, or undefined for any other channel. */
export function topicOfChannel(channel: string): string | undefined {
  if (!channel.startsWith(CHANNEL_HEAD) || !channel.endsWith(CHANNEL_TAIL)) return undefined;
  return channel.slice(CHANNEL_HEAD.length, channel.length - CHANNEL_TAIL.length);
}

/**
 * A topic channel's payload: "p<seq>:<epoch>:<frame>" (a publication: the position is read without
 * parsing the frame) or "e<frame>" (an ephemeral frame). Anything else is undefined.
 */
export function decodePayload(topic: string, payload: string): Publication | { frame: string } | undefined {
  if (payload.charCodeAt(0) === 101 /* e */) return { frame: payload.slice(1) };
  if (payload.charCodeAt(0) !== 112 /* p */) return undefined;
  const seqEnd = payload.indexOf(":", 1);
  const epochEnd = payload.indexOf(":", seqEnd + 1);
  if (seqEnd < 0 || epochEnd < 0) return undefined;
  return { topic, seq: Number(payload.slice(1, seqEnd)), epoch: payload.slice(seqEnd + 1, epochEnd), frame: payload.slice(epochEnd + 1) };
}
