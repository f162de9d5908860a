/**
 * The `message` frame, serialized once at the ordering point. Built from pieces so that the
 * Redis script can assemble the same bytes around a seq and epoch it assigns itself.
 */
import type { PublishInput } from "./broker.ts";

/** Everything of the frame before the seq: `{"type":"message","topic":"…","seq":` */
export function framePrefix(topic: string): string {
  return `{"type":"message","topic":${JSON.stringify(topic)},"seq":`;
}

/** Everything after the epoch: `,"from":…,"data":…,"ts":…}` (`data` undefined becomes null). */
export function frameSuffix(input: PublishInput): string {
  return `,"from":${JSON.stringify(input.from)},"data":${JSON.stringify(input.data ?? null)},"ts":${input.ts}}`;
}

export function messageFrame(topic: string, seq: number, epoch: string, input: PublishInput): string {
  return `${framePrefix(topic)}${seq},"epoch":${JSON.stringify(epoch)}${frameSuffix(input)}`;
}

/** The `message` frame of an ephemeral topic (SPEC §5): no seq, no epoch. */
export function ephemeralFrame(topic: string, input: PublishInput): string {
  return `{"type":"message","topic":${JSON.stringify(topic)}${frameSuffix(input)}`;
}
