/**
 * ioredis ≥ 6 wraps every command in `diagnostics_channel.tracingChannel("ioredis:command")`
 * unless `channel.hasSubscribers === false`. Node defines that getter; Bun 1.4's TracingChannel
 * does not (it is `undefined`), so under Bun every command paid for a traced promise and a
 * context whose arguments are sanitised by a list of regexes — ~10 % of a handshake's CPU and a
 * share of every publish (bench/README.md, round four). This gives Bun's TracingChannel the
 * getter Node has: true while any of its five channels has a subscriber, so a tracer that does
 * subscribe (OpenTelemetry) still sees every command.
 */
import diagnostics from "node:diagnostics_channel";

type Channel = { hasSubscribers: boolean };
type Tracing = Record<"start" | "end" | "asyncStart" | "asyncEnd" | "error", Channel | undefined>;

export function defineTracingHasSubscribers(): void {
  if (typeof diagnostics.tracingChannel !== "function") return;
  const prototype = Object.getPrototypeOf(diagnostics.tracingChannel("switchboard:probe")) as object;
  if ("hasSubscribers" in prototype) return;
  Object.defineProperty(prototype, "hasSubscribers", {
    configurable: true,
    get(this: Tracing): boolean {
      return Boolean(
        this.start?.hasSubscribers || this.end?.hasSubscribers || this.asyncStart?.hasSubscribers ||
          this.asyncEnd?.hasSubscribers || this.error?.hasSubscribers,
      );
    },
  });
}

defineTracingHasSubscribers();
