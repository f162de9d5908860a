/**
 * SwitchboardApi: the server API (SPEC §6) from an app's backend, on Bun and on Node 20+ (only
 * `fetch`, no Bun API). One method per endpoint, taking the body (or a topic and a query) and
 * returning the answer. A refusal throws SwitchboardApiError with the server's `code` and
 * `message`; a request that never got an answer throws one with `status` 0.
 */
import type {
  BroadcastAnswer,
  BroadcastBody,
  DisconnectBody,
  HistoryAnswer,
  HistoryQuery,
  InfoAnswer,
  PresenceAnswer,
  PresenceStatsAnswer,
  PublishAnswer,
  PublishBody,
  SocketsAnswer,
  TicketAnswer,
  TicketBody,
  TokenAnswer,
  TokenBody,
  TopicsAnswer,
  TopicsQuery,
  UserTopicBody,
} from "../protocol/api.ts";

export interface SwitchboardApiOptions {
  /** The server's base URL, e.g. `https://rt.example.com` (a trailing slash is fine). */
  url: string;
  /** The server's API_KEY. */
  apiKey: string;
  /** How long one call may take before it fails with code `timeout`. Default 10 000. */
  timeoutMs?: number;
  /** A fetch to use instead of the global one (tests, proxies). */
  fetch?: typeof fetch;
}

/**
 * A call the server refused (`status` and `code` from its `{error:{code,message}}`), or that
 * got no answer: `status` 0 with code `timeout` (no answer within `timeoutMs`) or `network`
 * (no connection). After a `timeout` the server may still have acted on the call.
 */
export class SwitchboardApiError extends Error {
  override name = "SwitchboardApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

type Query = Record<string, string | number | undefined>;

export class SwitchboardApi {
  private readonly base: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  constructor(options: SwitchboardApiOptions) {
    if (typeof options?.url !== "string" || !/^https?:\/\//.test(options.url)) {
      throw new TypeError("SwitchboardApi: url must be an http:// or https:// URL");
    }
    if (typeof options.apiKey !== "string" || options.apiKey.length === 0) {
      throw new TypeError("SwitchboardApi: apiKey is required (the server's API_KEY)");
    }
    const timeoutMs = options.timeoutMs ?? 10_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new TypeError("SwitchboardApi: timeoutMs must be a positive number");
    this.base = options.url.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.timeoutMs = timeoutMs;
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  publish(body: PublishBody): Promise<PublishAnswer> {
    return this.call("POST", "/api/publish", body);
  }

  broadcast(body: BroadcastBody): Promise<BroadcastAnswer> {
    return this.call("POST", "/api/broadcast", body);
  }

  history(topic: string, query: HistoryQuery = {}): Promise<HistoryAnswer> {
    return this.call("GET", `/api/history/${encodeURIComponent(topic)}`, undefined, query as Query);
  }

  presence(topic: string): Promise<PresenceAnswer> {
    return this.call("GET", `/api/presence/${encodeURIComponent(topic)}`);
  }

  presenceStats(topic: string): Promise<PresenceStatsAnswer> {
    return this.call("GET", `/api/presence/${encodeURIComponent(topic)}/stats`);
  }

  subscribe(body: UserTopicBody): Promise<SocketsAnswer> {
    return this.call("POST", "/api/subscribe", body);
  }

  unsubscribe(body: UserTopicBody): Promise<SocketsAnswer> {
    return this.call("POST", "/api/unsubscribe", body);
  }

  disconnect(body: DisconnectBody): Promise<SocketsAnswer> {
    return this.call("POST", "/api/disconnect", body);
  }

  createTicket(body: TicketBody): Promise<TicketAnswer> {
    return this.call("POST", "/api/tickets", body);
  }

  createToken(body: TokenBody): Promise<TokenAnswer> {
    return this.call("POST", "/api/tokens", body);
  }

  topics(query: TopicsQuery = {}): Promise<TopicsAnswer> {
    return this.call("GET", "/api/topics", undefined, query as Query);
  }

  info(): Promise<InfoAnswer> {
    return this.call("GET", "/api/info");
  }

  private async call<T>(method: "GET" | "POST", path: string, body?: unknown, query?: Query): Promise<T> {
    const url = new URL(this.base + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { Authorization: `Bearer ${this.apiKey}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res: Response;
    let text: string;
    try {
      res = await this.fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await res.text();
    } catch (error) {
      const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
      throw timedOut
        ? new SwitchboardApiError(0, "timeout", `${method} ${path}: no answer within ${this.timeoutMs} ms`, { cause: error })
        : new SwitchboardApiError(0, "network", `${method} ${path}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (res.ok && parsed !== undefined) return parsed as T;
    const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    if (!res.ok && typeof error?.code === "string" && typeof error.message === "string") {
      throw new SwitchboardApiError(res.status, error.code, error.message);
    }
    throw new SwitchboardApiError(res.status, res.ok ? "bad_response" : "http_error", `${method} ${path}: HTTP ${res.status} without a Switchboard answer`);
  }
}
