/**
 * Connection ids (`welcome.connectionId`, logs, presence entries in Redis): a random prefix drawn
 * once per process start and a counter, e.g. `k3j9x0qa2b.1f`. Unique across the processes and
 * restarts of a deployment as presence needs (a restarted process draws a new prefix: 10 base-36
 * characters, ~51 random bits), and 12–17 characters instead of a UUID's 36: every socket keeps
 * its id, and so does each presence entry (idle memory, bench/README.md).
 */

const PREFIX_LENGTH = 10;

function randomPrefix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(PREFIX_LENGTH));
  let prefix = "";
  for (const byte of bytes) prefix += (byte % 36).toString(36);
  return prefix;
}

const prefix = `${randomPrefix()}.`;
let counter = 0;

/** The next id of this process. A flat string (joined, not concatenated): a rope's cell is twice a flat one's. */
export function nextConnectionId(): string {
  counter += 1;
  return [prefix, counter.toString(36)].join("");
}
