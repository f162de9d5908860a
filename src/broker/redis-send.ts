/**
 * How the broker sends the commands of its publish and history paths, each bounded by the command
 * deadline (REDIS_COMMAND_TIMEOUT_MS):
 * - One Redis: no auto-pipelining; the commands of one event-loop turn leave in one write
 *   (TickCork), and ioredis's `commandTimeout`, counted from the call, is the deadline.
 * - Cluster (auto-pipelined): `within` as well, since a command queued behind a pipeline that is
 *   timing out would otherwise wait for that one first; and a command the cluster refused with a
 *   redirection is run again, each attempt bounded by what is left of the one deadline
 *   (redis/redirections.ts).
 */
import type { Cluster } from "ioredis";
import type Redis from "ioredis";
import { within, type RedisClient } from "../redis/connection.ts";
import { TickCork } from "../redis/tick-cork.ts";
import { followRedirections } from "../redis/redirections.ts";

export class CommandSender {
  /** Null on a cluster, which writes to one socket per node. */
  private readonly cork: TickCork | null;

  constructor(
    private readonly client: RedisClient,
    cluster: boolean,
    private readonly deadlineMs: number,
  ) {
    this.cork = cluster ? null : new TickCork(client as Redis);
  }

  send<T>(run: () => Promise<T>): Promise<T> {
    if (this.cork === null) return followRedirections(this.client as Cluster, (leftMs) => within(run(), leftMs), this.deadlineMs);
    this.cork.hold();
    return run();
  }

  /** Puts a command sent directly (a PUBLISH) in the turn's write too. */
  hold(): void {
    this.cork?.hold();
  }
}
