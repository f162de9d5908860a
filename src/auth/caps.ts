/**
 * Capabilities a credential may carry (SPEC §5): topic patterns → actions. A pattern is an exact
 * topic, a prefix ending in `*`, or `*`. The schema bounds their size, since they travel inside
 * tokens, tickets and connect answers; what they grant is decided in auth/permissions.ts.
 */
import { z } from "zod";

export const CapAction = z.enum(["subscribe", "publish", "presence", "history"]);
export type CapAction = z.infer<typeof CapAction>;

/** An exact topic name, a prefix of one followed by `*`, or `*` alone. */
export const CAP_PATTERN = /^(?:[A-Za-z0-9:_.@|+=-]{1,128}\*?|\*)$/;

/**
 * A pattern's actions. An action listed twice (grants merged from several roles) counts once; the
 * bound (16 entries) only keeps a credential small.
 */
const Actions = z
  .array(CapAction)
  .max(16, { error: "caps list at most 16 actions per pattern" })
  .transform((actions) => [...new Set(actions)]);

export const Caps = z
  .record(z.string().regex(CAP_PATTERN, { error: "caps keys must be a topic, a prefix ending in *, or *" }), Actions)
  .refine((caps) => Object.keys(caps).length <= 256, { error: "caps may list at most 256 patterns" });
export type Caps = z.infer<typeof Caps>;
