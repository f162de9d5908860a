/**
 * Bun's WebSocket events → the socket's Connection. Limits come from the config; deflate stays
 * off (FACTS: frames are small, and compression costs every fan-out).
 */
import type { Server, WebSocketHandler } from "bun";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { SocketData } from "./connection.ts";

export type SwitchboardServer = Server<SocketData>;

type SocketConfig = Pick<Config, "maxPayloadBytes" | "idleTimeoutS" | "backpressureLimitBytes">;

export function websocketHandler(config: SocketConfig, metrics: Metrics, log: Logger): WebSocketHandler<SocketData> {
  return {
    maxPayloadLength: config.maxPayloadBytes,
    idleTimeout: config.idleTimeoutS,
    sendPings: config.idleTimeoutS > 0,
    backpressureLimit: config.backpressureLimitBytes,
    closeOnBackpressureLimit: false,
    perMessageDeflate: false,
    publishToSelf: false,
    open: (ws) => ws.data.conn.opened(ws),
    message: (ws, message) => ws.data.conn.received(message),
    drain: (ws) => ws.data.conn.onDrain(),
    close: (ws, code) => {
      metrics.wsClosed.inc({ code: String(code) });
      const conn = ws.data.conn;
      log.info("connection closed", { connectionId: conn.id, user: conn.userId, auth: conn.via, code, durationMs: Date.now() - conn.openedAt });
      conn.closed();
    },
  };
}
