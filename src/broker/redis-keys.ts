/**
 * Key and channel names of the Redis broker, and the channel payload format. Every key of a topic
 * shares the hash tag `{topic}` with the topic's channel, so one script touches one slot and the
 * channel's shard is the keys' shard (SPUBLISH from the script on Redis Cluster).
 */

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
