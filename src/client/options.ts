/** The client's options, their defaults, and the checks that turn a mistake into one clear sentence. */
import { DEFAULT_RECONNECT, type ReconnectOptions } from "./backoff.ts";
import type { TokenRequest } from "./events.ts";
import { DEFAULT_RATE_LIMIT, type RateLimit } from "./pacer.ts";

export interface ClientOptions {
  /**
   * The WebSocket endpoint: `ws(s)://host/ws`, `http(s)://host/ws`, or a path such as `/ws`
   * resolved against the page's location. Default in a browser: `/ws` on the page's origin.
   */
  url?: string;
  /**
   * Ticket auth: called before every connection attempt; the ticket is appended as `?ticket=`.
   * Reject with a SwitchboardClientError of code `unauthorized` to stop reconnecting.
   */
  getTicket?: () => Promise<string>;
  /**
   * Token auth (mobile, servers, Bun, the application's own identity — SPEC §4): called before
   * every attempt, the token sent as the first frame `{type:"auth", token}`; called again on the
   * server's `expiring` frame, the new token sent as `{type:"refresh", token}` on the same socket;
   * and after a 4001, before reconnecting (`reason: "unauthorized"`: do not return a cached token).
   * Reject with code `unauthorized` to stop reconnecting.
   */
  getToken?: (request: TokenRequest) => Promise<string>;
  /** Backoff and jitter; see backoff.ts. */
  reconnect?: Partial<ReconnectOptions>;
  /** How often an application-level ping is sent on an open connection. Default 25 000. */
  pingIntervalMs?: number;
  /**
   * A ping without its pong within this time means the link is dead: the socket is dropped and
   * replaced. A dead link is noticed within pingIntervalMs + pingTimeoutMs. Default 10 000.
   */
  pingTimeoutMs?: number;
  /** How long a request waits for its reply once sent on an open connection. Default 10 000. */
  requestTimeoutMs?: number;
  /**
   * How long an attempt may take from opening the socket to `welcome`; the credentials callback
   * before it (getTicket, getToken) gets as long again. Default 10 000.
   */
  connectTimeoutMs?: number;
  /**
   * Requests (publishes, presence queries) kept while offline, waiting for a connection. One more
   * is refused at once with code `overloaded` instead of growing memory without bound. Default 1 000.
   */
  maxQueuedRequests?: number;
  /**
   * Requests (subscribe, publish, presence, refresh) leave at most `burst` at once on a socket and
   * `perSecond` after that, in the order they were issued — what waited offline too — so that the
   * server's per-socket limit (RATE_LIMIT_BURST / RATE_LIMIT_PER_S, 100 / 50 by default) does not
   * refuse them with `rate_limited`. Default 90 / 45; keep both a little under the server's.
   */
  rateLimit?: Partial<RateLimit>;
  /** Connect at once (in a microtask, after your listeners are attached). Default true. */
  autoConnect?: boolean;
  /**
   * Makes the WebSocket (default `new WebSocket(url)`). In Bun, pass e.g.
   * `(url) => new WebSocket(url, { headers: { Cookie } })` to send a cookie.
   */
  createWebSocket?: (url: string) => WebSocket;
  /**
   * Where the browser's `online`/`offline` events come from. Default: `window` in a browser,
   * none elsewhere. `null` turns the listeners off.
   */
  network?: EventTarget | null;
  /** Random source in [0, 1) for jitter; tests make it deterministic. Default Math.random. */
  random?: () => number;
}

export interface ResolvedOptions {
  url: string;
  getTicket: (() => Promise<string>) | undefined;
  getToken: ((request: TokenRequest) => Promise<string>) | undefined;
  reconnect: ReconnectOptions;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  maxQueuedRequests: number;
  rateLimit: RateLimit;
  autoConnect: boolean;
  createWebSocket: (url: string) => WebSocket;
  network: EventTarget | null;
  random: () => number;
}

function positive(name: string, value: number | undefined, fallback: number, allowZero = false, unit = "milliseconds"): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new TypeError(`options.${name} must be a ${allowZero ? "non-negative" : "positive"} number of ${unit}, got ${String(value)}`);
  }
  return value;
}

/** Turns `/ws`, `http://…` or `ws://…` into a ws(s) URL. */
export function resolveUrl(url: string | undefined): string {
  const location = (globalThis as { location?: { href: string } }).location;
  if (url === undefined && !location) throw new TypeError("options.url is required outside a browser (e.g. ws://localhost:3000/ws)");
  let parsed: URL;
  try {
    parsed = new URL(url ?? "/ws", location?.href);
  } catch {
    throw new TypeError(`options.url must be a ws:, wss:, http: or https: URL or a path, got ${String(url)}`);
  }
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  else if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw new TypeError(`options.url must be a ws:, wss:, http: or https: URL, got ${parsed.protocol}`);
  }
  return parsed.href;
}

export function resolveOptions(options: ClientOptions): ResolvedOptions {
  if (options.getTicket && options.getToken) {
    throw new TypeError("options.getTicket and options.getToken exclude each other: pick one way to authenticate");
  }
  for (const name of ["getTicket", "getToken", "createWebSocket", "random"] as const) {
    if (options[name] !== undefined && typeof options[name] !== "function") throw new TypeError(`options.${name} must be a function`);
  }
  const r = options.reconnect ?? {};
  const reconnect: ReconnectOptions = {
    baseMs: positive("reconnect.baseMs", r.baseMs, DEFAULT_RECONNECT.baseMs),
    capMs: positive("reconnect.capMs", r.capMs, DEFAULT_RECONNECT.capMs),
    restartJitterMs: positive("reconnect.restartJitterMs", r.restartJitterMs, DEFAULT_RECONNECT.restartJitterMs, true),
    overloadedMinMs: positive("reconnect.overloadedMinMs", r.overloadedMinMs, DEFAULT_RECONNECT.overloadedMinMs, true),
    stableMs: positive("reconnect.stableMs", r.stableMs, DEFAULT_RECONNECT.stableMs, true),
  };
  if (reconnect.capMs < reconnect.baseMs) throw new TypeError("options.reconnect.capMs must be at least options.reconnect.baseMs");
  const browserWindow = (globalThis as { window?: EventTarget }).window;
  return {
    url: resolveUrl(options.url),
    getTicket: options.getTicket,
    getToken: options.getToken,
    reconnect,
    pingIntervalMs: positive("pingIntervalMs", options.pingIntervalMs, 25_000),
    pingTimeoutMs: positive("pingTimeoutMs", options.pingTimeoutMs, 10_000),
    requestTimeoutMs: positive("requestTimeoutMs", options.requestTimeoutMs, 10_000),
    connectTimeoutMs: positive("connectTimeoutMs", options.connectTimeoutMs, 10_000),
    maxQueuedRequests: positive("maxQueuedRequests", options.maxQueuedRequests, 1_000),
    rateLimit: {
      perSecond: positive("rateLimit.perSecond", options.rateLimit?.perSecond, DEFAULT_RATE_LIMIT.perSecond, false, "requests per second"),
      burst: positive("rateLimit.burst", options.rateLimit?.burst, DEFAULT_RATE_LIMIT.burst, false, "requests"),
    },
    autoConnect: options.autoConnect ?? true,
    createWebSocket: options.createWebSocket ?? ((url) => new WebSocket(url)),
    network: options.network === undefined ? (browserWindow ?? null) : options.network,
    random: options.random ?? Math.random,
  };
}
