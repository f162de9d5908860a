/**
 * Namespaces (SPEC §5): the part of a topic before its first `:` names the rules its topics follow.
 * Configured with NAMESPACES (JSON) or NAMESPACES_FILE (a path to the same JSON), validated at start;
 * a bad value refuses to start with one line naming the field. The built-in `room`, `user` and
 * `broadcast` keep the seed's behaviour unless the configuration redefines them, and a redefined
 * namespace is replaced whole: the options it leaves out take the option defaults, not the built-in's.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { ConfigError } from "../config.ts";

/** A namespace name: a topic's characters, without `:` (it ends the namespace). */
export const NAMESPACE_NAME = /^[A-Za-z0-9_.@|+=-]{1,64}$/;

const whole = (min: number, max: number) =>
  z
    .number({ error: "must be a whole number" })
    .int({ error: "must be a whole number" })
    .min(min, { error: `must be at least ${min}` })
    .max(max, { error: `must be at most ${max}` });

const flag = z.boolean({ error: "must be true or false" });

/** One namespace as written in the configuration: every option optional. */
const NamespaceInput = z.strictObject({
  subscribe: z.enum(["any", "owner", "caps", "app", "none"], { error: "must be one of any, owner, caps, app, none" }).optional(),
  publish: z.enum(["any", "owner", "caps", "app", "server"], { error: "must be one of any, owner, caps, app, server" }).optional(),
  presence: flag.optional(),
  joinLeave: flag.optional(),
  history: z
    .strictObject(
      { size: whole(0, 1_000_000).optional(), ttlS: whole(1, 30 * 86_400).optional() },
      { error: "must be an object {size, ttlS}" },
    )
    .optional(),
  delivery: z.enum(["ordered", "ephemeral"], { error: "must be ordered or ephemeral" }).optional(),
  webhook: flag.optional(),
}, { error: "must be an object of namespace options" });

const NamespacesInput = z.record(z.string(), NamespaceInput, { error: "must be a JSON object from namespace names to options" });

export type SubscribeRule = "any" | "owner" | "caps" | "app" | "none";
export type PublishRule = "any" | "owner" | "caps" | "app" | "server";

/** A namespace with every option decided. */
export interface Namespace {
  name: string;
  /** Who may subscribe without a grant. `owner`: the topic `<ns>:<user id>`. */
  subscribe: SubscribeRule;
  /** Who may publish from a socket without a grant; `server`: only the HTTP API. */
  publish: PublishRule;
  /** Members are kept and listed. Off: a subscribe writes no presence; the member list is forbidden. */
  presence: boolean;
  /** With presence on: `presence.join` / `presence.leave` frames go out. */
  joinLeave: boolean;
  /** Publications kept for recovery (`size` 0: none) and for how long after the last one. */
  history: { size: number; ttlS: number };
  /** `ephemeral`: no ordering point, no seq/epoch, no history, no gap repair, no resync. */
  delivery: "ordered" | "ephemeral";
  /** Every publication is also a `message.published` webhook event. */
  webhook: boolean;
}

export type NamespaceOptions = Omit<Namespace, "name">;

/** The built-in namespaces, as the seed behaved (SPEC §3 and §5's example). */
const BUILT_IN: Record<string, Pick<Namespace, "subscribe" | "publish" | "presence">> = {
  room: { subscribe: "any", publish: "any", presence: true },
  user: { subscribe: "owner", publish: "any", presence: false },
  broadcast: { subscribe: "any", publish: "server", presence: false },
};

/** The namespaces of a deployment, looked up by topic. */
export class Namespaces {
  private readonly byName: ReadonlyMap<string, Namespace>;

  constructor(list: Iterable<Namespace>) {
    this.byName = new Map([...list].map((ns) => [ns.name, ns]));
  }

  /** The namespace of a topic (the part before its first `:`), or null: outside every namespace. */
  of(topic: string): Namespace | null {
    const colon = topic.indexOf(":");
    if (colon <= 0) return null;
    return this.byName.get(topic.slice(0, colon)) ?? null;
  }

  get(name: string): Namespace | null {
    return this.byName.get(name) ?? null;
  }

  get all(): Iterable<Namespace> {
    return this.byName.values();
  }

  /** Does any namespace ask the app (`app`)? Then AUTHZ_URL is required. */
  get asksApp(): boolean {
    for (const ns of this.byName.values()) if (ns.subscribe === "app" || ns.publish === "app") return true;
    return false;
  }
}

/**
 * The demo chat's private rooms (src/http/demo-private.ts): only a grant reaches them. Added only
 * for the demo as shipped (`Config.demo`: development, demo users, no NAMESPACES), so any
 * configured deployment has exactly the namespaces it names.
 */
export const DEMO_PRIVATE: Pick<Namespace, "subscribe" | "publish" | "presence"> = { subscribe: "caps", publish: "caps", presence: true };

export interface NamespaceSettings {
  /** Add the demo's `private` namespace (DEMO_PRIVATE). */
  demo?: boolean;
  namespaces?: string | undefined;
  namespacesFile?: string | undefined;
  historySize: number;
  historyTtlS: number;
  authzUrl?: string | undefined;
}

/** Options a namespace leaves out take these (SPEC §5's table). */
function decide(name: string, input: z.infer<typeof NamespaceInput>, settings: NamespaceSettings): Namespace {
  return {
    name,
    subscribe: input.subscribe ?? "caps",
    publish: input.publish ?? "caps",
    presence: input.presence ?? false,
    joinLeave: input.joinLeave ?? true,
    history: { size: input.history?.size ?? settings.historySize, ttlS: input.history?.ttlS ?? settings.historyTtlS },
    delivery: input.delivery ?? "ordered",
    webhook: input.webhook ?? false,
  };
}

/**
 * The deployment's namespaces: the built-ins, replaced or joined by those of NAMESPACES or
 * NAMESPACES_FILE. Throws ConfigError with one line naming the bad field.
 */
export function loadNamespaces(settings: NamespaceSettings): Namespaces {
  const { source, text } = readSource(settings);
  const configured = text === null ? {} : parseNamespaces(source, text);
  const list = new Map<string, Namespace>();
  for (const [name, builtIn] of Object.entries(BUILT_IN)) list.set(name, decide(name, builtIn, settings));
  if (settings.demo === true) list.set("private", decide("private", DEMO_PRIVATE, settings));
  for (const [name, input] of Object.entries(configured)) list.set(name, decide(name, input, settings));
  const namespaces = new Namespaces(list.values());
  if (namespaces.asksApp && settings.authzUrl === undefined) {
    const asking = [...namespaces.all].filter((ns) => ns.subscribe === "app" || ns.publish === "app").map((ns) => ns.name);
    throw new ConfigError(`invalid configuration: ${source}.${asking[0]} uses "app", which needs AUTHZ_URL (and WEBHOOK_SECRET to sign its calls)`);
  }
  return namespaces;
}

function readSource(settings: NamespaceSettings): { source: string; text: string | null } {
  if (settings.namespacesFile !== undefined) {
    try {
      return { source: "NAMESPACES_FILE", text: readFileSync(settings.namespacesFile, "utf8") };
    } catch (error) {
      const why = (error as NodeJS.ErrnoException).code ?? "unreadable";
      throw new ConfigError(`invalid configuration: NAMESPACES_FILE cannot be read (${why}: ${settings.namespacesFile})`);
    }
  }
  return { source: "NAMESPACES", text: settings.namespaces ?? null };
}

function parseNamespaces(source: string, text: string): z.infer<typeof NamespacesInput> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`invalid configuration: ${source} is not valid JSON (${(error as Error).message})`);
  }
  if (typeof json === "object" && json !== null && !Array.isArray(json)) {
    for (const name of Object.keys(json)) {
      if (!NAMESPACE_NAME.test(name)) {
        throw new ConfigError(`invalid configuration: ${source} names a namespace ${JSON.stringify(name)}; names are 1-64 of A-Z a-z 0-9 _ . @ | + = - (no colon)`);
      }
    }
  }
  const parsed = NamespacesInput.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const path = [source, ...issue.path.map(String)].join(".");
  if (issue.code === "unrecognized_keys") {
    throw new ConfigError(`invalid configuration: ${path}.${issue.keys[0]} is not an option (subscribe, publish, presence, joinLeave, history, delivery, webhook; history takes size and ttlS)`);
  }
  throw new ConfigError(`invalid configuration: ${path} ${issue.message}`);
}
