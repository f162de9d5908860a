/**
 * Bun's WebSocket events → the socket's Connection. Limits come from the config; deflate stays
 * off (FACTS: frames are small, and compression costs every fan-out).
 */
import type { Server, WebSocketHandler } from "bun";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { Close } from "../protocol/codes.ts";
import type { SocketData } from "./connection.ts";

export type SwitchboardServer = Server<SocketData>;

type SocketConfig = Pick<Config, "maxPayloadBytes" | "idleTimeoutS" | "backpressureLimitBytes">;

/** The codes a close can carry that are not the client's free choice: the SPEC's, and Bun's 1005/1006. */
const KNOWN_CLOSE_CODES = new Set<number>([...Object.values(Close), 1005, 1006]);

/**
 * The metric label of a close code. A client may close with any code of 3000-4999: each would be
 * a series of its own, kept for the life of the process, so those it picks are counted as "other".
 */
export function closeCodeLabel(code: number): string {
  return KNOWN_CLOSE_CODES.has(code) ? String(code) : "other";
}

export function websocketHandler(config: SocketConfig, metrics: Metrics, log: Logger): WebSocketHandler<SocketData> {
  return {
    maxPayloadLength: config.maxPayloadBytes,
    idleTimeout: config.idleTimeoutS,
    sendPings: config.idleTimeoutS > 0,
    backpressureLimit: config.backpressureLimitBytes,
    closeOnBackpressureLimit: false,
    perMessageDeflate: false,
    publishToSelf: false,
    open: (ws) => ws.data.opened(ws),
    message: (ws, message) => ws.data.received(message),
    // Control frames from the client (the pong to a ping goes out natively first): counted like frames.
    ping: (ws) => ws.data.controlReceived(),
    pong: (ws) => ws.data.controlReceived(),
    drain: (ws) => ws.data.onDrain(),
    close: (ws, code) => {
      metrics.wsClosed.inc(closeCodeLabel(code));
      const conn = ws.data;
      log.info("connection closed", { connectionId: conn.id, user: conn.userId, auth: conn.via, code, durationMs: Date.now() - conn.openedAt });
      conn.closed();
    },
  };
}
