/**
 * The environment, validated once at start (SPEC §1). A bad value stops the process with one
 * line naming the variable; `loadConfig` throws ConfigError carrying that line.
 */
import { z } from "zod";

const DEMO_USERS = "alice:alice-password,bob:bob-password,carol:carol-password";

const bool = z
  .enum(["true", "false", "1", "0", "yes", "no"], { error: "must be true or false" })
  .transform((v) => v === "true" || v === "1" || v === "yes");

/** Decimal digits (blanks around allowed): `Number()` reads " " as 0 (PORT=" ": a random port) and takes 0x10, 1e3. */
const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.string().trim().regex(/^[+-]?\d+$/, { error: "must be a whole number" }).transform(Number)
    .pipe(z.number().int({ error: "must be a whole number" }).min(min, { error: `must be at least ${min}` }).max(max, { error: `must be at most ${max}` }));

/** TRUST_PROXY: which proxy in front, if any, and so which of its headers to believe. */
export type TrustProxy = false | true | "fly";

const USER_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

const users = z.string().transform((raw, ctx) => {
  const out: { name: string; password: string }[] = [];
  for (const pair of raw.split(",").map((p) => p.trim()).filter(Boolean)) {
    const colon = pair.indexOf(":");
    const name = colon > 0 ? pair.slice(0, colon) : "";
    const password = colon > 0 ? pair.slice(colon + 1) : "";
    if (!USER_NAME.test(name) || password.length === 0) {
      ctx.addIssue({ code: "custom", message: "must be name:password pairs separated by commas; names use A-Z a-z 0-9 _ . -" });
      return z.NEVER;
    }
    if (out.some((u) => u.name === name)) {
      // Silently keeping one of two passwords would lock out whoever holds the other.
      ctx.addIssue({ code: "custom", message: `lists the user "${name}" twice` });
      return z.NEVER;
    }
    out.push({ name, password });
  }
  return out;
});

const origins = z.string().transform((raw, ctx) => {
  const out: string[] = [];
  for (const entry of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      ctx.addIssue({ code: "custom", message: `"${entry}" is not an origin like https://app.example.com` });
      return z.NEVER;
    }
    if (url.origin !== entry || entry === "null") {
      ctx.addIssue({ code: "custom", message: `"${entry}" must be an exact origin (scheme://host[:port], no path or trailing slash)${url.origin === "null" ? "" : `; a browser sends ${url.origin}`}` });
      return z.NEVER;
    }
    out.push(entry);
  }
  return out;
});

/** One URL, or (with REDIS_CLUSTER=true, checked in loadConfig) comma-separated seed nodes. */
const redisUrl = z
  .string()
  .refine((v) => v.split(",").every((u) => /^rediss?:\/\//.test(u.trim())), { error: "must start with redis:// or rediss://" })
  .refine((v) => v.split(",").every((u) => URL.canParse(u.trim())), { error: "is not a valid URL" });

const httpUrl = z
  .string()
  .refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), { error: "must be an http:// or https:// URL" });

const secret32 = z.string().refine((v) => new TextEncoder().encode(v).byteLength >= 32, { error: "must be at least 32 bytes (try: openssl rand -base64 48)" });

/** A claim's name: a whole claim name (`https://example.com/caps`) or a dotted path (`app.caps`). */
const claimName = z.string().min(1).max(256);

const Env = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  PORT: int(0, 65535).default(3000),
  HOST: z.string().min(1).default("0.0.0.0"),
  WORKERS: int(1, 256).default(1),
  REDIS_URL: redisUrl.optional(),
  SESSION_SECRET: z.string().optional(),
  ALLOWED_ORIGINS: origins.default([]),
  API_KEY: z.string().min(16, { error: "must be at least 16 characters" }).optional(),
  METRICS_TOKEN: z.string().min(1).optional(),
  USERS: users.optional(),
  AUTH_TIMEOUT_MS: int(100, 600_000).default(5000),
  TICKET_TTL_S: int(1, 3600).default(30),
  TOKEN_TTL_S: int(10, 86_400).default(300),
  SESSION_TTL_S: int(60, 90 * 86_400).default(7 * 86_400),
  MAX_PAYLOAD_BYTES: int(256, 16 * 1024 * 1024).default(65536),
  HISTORY_SIZE: int(0, 1_000_000).default(100),
  HISTORY_TTL_S: int(1, 30 * 86_400).default(300),
  /** Embedded broker: the history of all topics together; the least recently published go first. */
  HISTORY_MAX_BYTES: int(65_536).default(128 * 1024 * 1024),
  /** With Redis: how long a crashed process's presence entries outlive it (≤ 20 s, so members leave within 30 s). */
  PRESENCE_LEASE_MS: int(500, 20_000).default(15_000),
  INSTANCE_ID: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, { error: "must be 1-64 of A-Z a-z 0-9 _ . : -" }).optional(),
  FLY_MACHINE_ID: z.string().optional(),
  REGION: z.string().min(1).max(64).optional(),
  FLY_REGION: z.string().optional(),
  RATE_LIMIT_PER_S: z.coerce.number({ error: "must be a number" }).positive({ error: "must be positive" }).default(50),
  RATE_LIMIT_BURST: int(1, 1_000_000).default(100),
  MAX_CONNECTIONS: int(1).default(10000),
  MAX_CONNECTIONS_PER_IP: int(1).default(100),
  MAX_CONNECTIONS_PER_USER: int(1).default(20),
  BACKPRESSURE_LIMIT_BYTES: int(1024).default(1_048_576),
  LOGIN_MAX_FAILURES: int(1).default(10),
  /** Failed logins per IP, across every username, in the same 5-minute window (password spraying). */
  LOGIN_MAX_FAILURES_PER_IP: int(1).default(100),
  DRAIN_MS: int(0, 300_000).default(3000),
  /** During a storm of upgrades (≥ 100/s), new ones are shed (opened, closed 1013 with a retry hint) while the oldest revocation read queued has waited longer than SHED_WAIT_MS (with Redis), or the event loop lags more than SHED_LAG_MS (without); 0 = never (docs/protocol.md). */
  SHED_WAIT_MS: int(0, 60_000).default(5000),
  SHED_LAG_MS: int(0, 60_000).default(200),
  /**
   * Which proxy headers are read (SPEC §8): `false` none; `true` the scheme from X-Forwarded-Proto
   * and the client IP from the last X-Forwarded-For hop; `fly` the client IP from Fly-Client-IP
   * (and the scheme from X-Forwarded-Proto, which Fly's proxy sets). Default: `fly` on Fly.
   */
  TRUST_PROXY: z
    .enum(["true", "false", "fly", "1", "0", "yes", "no"], { error: "must be false, true or fly" })
    .transform((v): TrustProxy => (v === "fly" ? "fly" : v === "true" || v === "1" || v === "yes"))
    .optional(),
  IDLE_TIMEOUT_S: int(0, 960).default(60),
  /** Close a socket with 1012 after about this many seconds (±10 % jitter) so clients rebalance; 0 = never. */
  MAX_CONNECTION_AGE_S: int(0, 30 * 86_400).default(0),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),

  // ── SPEC §4: identity from the application ──
  /** JWKS of the app or its identity provider (RS256, PS256, ES256, EdDSA); needs AUTH_ISSUER and AUTH_AUDIENCE. */
  AUTH_JWKS_URL: httpUrl.optional(),
  /** HS256 secret shared with the app's backend (≥ 32 bytes, never SESSION_SECRET). */
  AUTH_JWT_SECRET: secret32.optional(),
  AUTH_ISSUER: z.string().min(1).optional(),
  AUTH_AUDIENCE: z.string().min(1).optional(),
  AUTH_USER_CLAIM: claimName.default("sub"),
  AUTH_NAME_CLAIM: claimName.default("name"),
  AUTH_CAPS_CLAIM: claimName.default("caps"),
  /** Name of the app's own cookie holding an app JWT. */
  AUTH_COOKIE: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/, { error: "must be a cookie name" }).optional(),
  /** The app decides upgrades that carry only its opaque session cookie. */
  AUTH_CONNECT_URL: httpUrl.optional(),
  AUTH_CONNECT_TIMEOUT_MS: int(100, 30_000).default(2000),
  AUTH_CONNECT_CACHE_S: int(0, 3600).default(10),
  /** When set, the session cookie is `Domain=<it>; Secure`, without the `__Host-` prefix. */
  COOKIE_DOMAIN: z.string().regex(/^\.?[A-Za-z0-9.-]{1,253}$/, { error: "must be a domain like example.com" }).optional(),

  // ── SPEC §5: permissions ──
  /** Namespace rules as JSON (parsed and validated by auth/namespaces.ts). */
  NAMESPACES: z.string().optional(),
  /** A path to the same JSON. */
  NAMESPACES_FILE: z.string().min(1).optional(),
  /** The app answers `subscribe`/`publish: "app"` questions here. */
  AUTHZ_URL: httpUrl.optional(),

  // ── SPEC §6: webhooks ──
  WEBHOOK_URL: httpUrl.optional(),
  /** Signs webhooks, AUTH_CONNECT_URL and AUTHZ_URL calls (≥ 32 bytes). */
  WEBHOOK_SECRET: secret32.optional(),
  WEBHOOK_MAX_AGE_S: int(1, 7 * 86_400).default(3600),
  /** Extension: the first retry's delay; doubles up to 60 s. For tests and impatient receivers. */
  WEBHOOK_RETRY_BASE_MS: int(10, 60_000).default(1000),
  /** Extension, with Redis: how long a crashed sender's outbox shards stay locked (taken over within ×1.25). */
  WEBHOOK_LEASE_MS: int(500, 20_000).default(10_000),

  // ── SPEC §7: Redis Cluster ──
  REDIS_CLUSTER: bool.default(false),
  /** A Redis command without a reply after this long fails (`unavailable`). */
  REDIS_COMMAND_TIMEOUT_MS: int(50, 60_000).default(500),
  /** Extension, one Redis: revokers answer this long after telling every machine, which may then reuse "not revoked" (docs/redis.md); 0: off. */
  REVOCATION_FENCE_MS: int(0, 10_000).default(250),
  USER_REVOCATIONS_LEGACY: z.enum(["read", "write", "off"]).default("read"),

  // ── SPEC §8: budgets ──
  MAX_SUBSCRIPTIONS_PER_SOCKET: int(1, 100_000).default(256),
  MAX_SUBSCRIPTIONS_PER_USER: int(1, 1_000_000).default(2048),
  TOPIC_CREATIONS_PER_MIN: int(1, 1_000_000).default(120),
  TICKETS_PER_MIN: int(1, 1_000_000).default(60),
  /** When set, /metrics is served only on this port and the public port answers 404. */
  METRICS_PORT: int(1, 65535).optional(),
});

/** `MAX_CONNECTIONS_PER_IP` → `maxConnectionsPerIp`: each setting is spelled once, in `Env`. */
type Camel<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Lowercase<Head>}${Capitalize<Camel<Tail>>}` : Lowercase<S>;
type Settings = { [K in keyof z.output<typeof Env> as Camel<K & string>]: z.output<typeof Env>[K] };

function camel(name: string): string {
  return name.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Every setting of `Env` under its camelCase name, and what is derived from several of them:
 * the session key as bytes, the fallbacks that depend on Fly's variables or NODE_ENV.
 */
export type Config = Omit<Settings, "sessionSecret" | "allowedOrigins" | "users" | "instanceId" | "region" | "trustProxy"> & {
  /** HS256 key bytes: at least 32. */
  sessionSecret: Uint8Array;
  /** True when no SESSION_SECRET was given and a random one was generated. */
  sessionSecretGenerated: boolean;
  allowedOrigins: ReadonlySet<string>;
  users: { name: string; password: string }[];
  instanceId: string;
  region: string;
  trustProxy: TrustProxy;
  /**
   * The demo as shipped: development with the demo users and no NAMESPACES / NAMESPACES_FILE.
   * Only then does the demo chat's private room exist (the `private` namespace and /demo/* routes).
   */
  demo: boolean;
};

export class ConfigError extends Error {
  override name = "ConfigError";
}

function randomId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}

/** SESSION_SECRET (at least 32 bytes); outside production a random one when it is not set. */
function sessionSecretOf(e: z.infer<typeof Env>, production: boolean): { sessionSecret: Uint8Array; sessionSecretGenerated: boolean } {
  if (e.SESSION_SECRET !== undefined) {
    const sessionSecret = new TextEncoder().encode(e.SESSION_SECRET);
    if (sessionSecret.byteLength < 32) {
      throw new ConfigError("invalid configuration: SESSION_SECRET must be at least 32 bytes (try: openssl rand -base64 48)");
    }
    return { sessionSecret, sessionSecretGenerated: false };
  }
  if (production) throw new ConfigError("invalid configuration: SESSION_SECRET is required when NODE_ENV=production (at least 32 bytes)");
  return { sessionSecret: crypto.getRandomValues(new Uint8Array(32)), sessionSecretGenerated: true };
}

/** Settings valid alone but not together: one sentence naming both. */
function checkCombinations(e: z.infer<typeof Env>): void {
  if (e.WORKERS > 1 && e.REDIS_URL === undefined) {
    throw new ConfigError("invalid configuration: WORKERS above 1 needs REDIS_URL (workers share topics through Redis)");
  }

  if (e.AUTH_JWKS_URL !== undefined && (e.AUTH_ISSUER === undefined || e.AUTH_AUDIENCE === undefined)) {
    throw new ConfigError("invalid configuration: AUTH_JWKS_URL needs AUTH_ISSUER and AUTH_AUDIENCE (an identity provider also signs tokens meant for other apps)");
  }
  if (e.AUTH_COOKIE !== undefined && e.AUTH_JWKS_URL === undefined && e.AUTH_JWT_SECRET === undefined) {
    throw new ConfigError("invalid configuration: AUTH_COOKIE needs AUTH_JWKS_URL or AUTH_JWT_SECRET (to verify the JWT the cookie holds)");
  }
  if (e.AUTH_JWT_SECRET !== undefined && e.AUTH_JWT_SECRET === e.SESSION_SECRET) {
    throw new ConfigError("invalid configuration: AUTH_JWT_SECRET must differ from SESSION_SECRET (the app must not be able to mint Switchboard sessions)");
  }
  for (const name of ["AUTH_CONNECT_URL", "AUTHZ_URL", "WEBHOOK_URL"] as const) {
    if (e[name] !== undefined && e.WEBHOOK_SECRET === undefined) {
      throw new ConfigError(`invalid configuration: ${name} needs WEBHOOK_SECRET (at least 32 bytes) to sign its requests`);
    }
  }
  if (e.NAMESPACES !== undefined && e.NAMESPACES_FILE !== undefined) {
    throw new ConfigError("invalid configuration: set NAMESPACES or NAMESPACES_FILE, not both");
  }
  if (e.REDIS_CLUSTER && e.REDIS_URL === undefined) {
    throw new ConfigError("invalid configuration: REDIS_CLUSTER=true needs REDIS_URL (one or more seed nodes)");
  }
  if (!e.REDIS_CLUSTER && e.REDIS_URL?.includes(",")) {
    throw new ConfigError("invalid configuration: REDIS_URL lists several nodes; that needs REDIS_CLUSTER=true (one Redis takes one URL)");
  }
}

/** Validates the environment. Throws ConfigError with one readable line per bad value. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable means "unset", as in most shells' `FOO= cmd`.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = Env.safeParse(cleaned, { jitless: true }); // parsed once: building zod's compiled parser cost ~8 ms of start-up
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join(".") || "environment"} ${i.message}`);
    throw new ConfigError(`invalid configuration: ${lines.join("; ")}`);
  }
  const e = parsed.data;
  const production = e.NODE_ENV === "production";

  const { sessionSecret, sessionSecretGenerated } = sessionSecretOf(e, production);
  checkCombinations(e);

  const onFly = e.FLY_MACHINE_ID !== undefined || e.FLY_REGION !== undefined;
  const settings = Object.fromEntries(Object.entries(e).map(([k, v]) => [camel(k), v])) as Settings;
  return {
    ...settings,
    sessionSecret,
    sessionSecretGenerated,
    allowedOrigins: new Set(e.ALLOWED_ORIGINS),
    users: e.USERS ?? (production ? [] : parseDemoUsers()),
    instanceId: e.INSTANCE_ID ?? e.FLY_MACHINE_ID ?? randomId(),
    region: e.REGION ?? e.FLY_REGION ?? "local",
    trustProxy: e.TRUST_PROXY ?? (onFly ? "fly" : false),
    demo: !production && e.USERS === undefined && e.NAMESPACES === undefined && e.NAMESPACES_FILE === undefined,
  };
}

function parseDemoUsers() {
  return DEMO_USERS.split(",").map((pair) => {
    const [name, password] = pair.split(":") as [string, string];
    return { name, password };
  });
}

