/**
 * Work proportional to an answer's size costs in proportion (SPEC §8): rate-limit tokens for an
 * answer of `items` items, one per `perToken` started, at least one. The frame that asked has
 * already paid one.
 */
export const MEMBERS_PER_TOKEN = 100;
export const REPLAYED_PER_TOKEN = 10;

export function sizeCost(items: number, perToken: number): number {
  return Math.max(1, Math.ceil(items / perToken));
}
