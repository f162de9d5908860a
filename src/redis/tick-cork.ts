/**
 * The commands a client issues in one event-loop turn leave in one socket write, without ioredis's
 * auto-pipelining. Auto-pipelining builds a Pipeline object per turn (copying every defined script
 * onto it), hands each reply back through a `nextTick`, and keeps one pipeline in flight per
 * connection; on the publish path its hop, the Pipeline's exec and the reply's way back were ~15 µs
 * per command at one publish in flight (bench/README.md, round four). Here the client's socket is
 * corked at the first command of a turn and uncorked on `setImmediate`; ioredis still sends every
 * command itself, in call order, each with its own `commandTimeout` counted from the call.
 *
 * One Redis only: a Cluster client writes to one socket per node (it keeps auto-pipelining).
 */
import type Redis from "ioredis";

interface Corkable {
  readonly writable: boolean;
  cork(): void;
  uncork(): void;
}

export class TickCork {
  private corked: Corkable | null = null;
  private readonly release = (): void => {
    const stream = this.corked;
    this.corked = null;
    stream?.uncork();
  };

  constructor(private readonly client: Pick<Redis, "stream">) {}

  /** Call before sending: holds this turn's writes until the turn ends. */
  hold(): void {
    if (this.corked !== null) return;
    // ioredis replaces its stream on every reconnection: cork the current one, uncork that same one.
    const stream = this.client.stream as Corkable | undefined;
    if (stream === undefined || !stream.writable) return;
    stream.cork();
    this.corked = stream;
    setImmediate(this.release);
  }
}
