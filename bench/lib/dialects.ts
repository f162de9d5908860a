/**
 * How the load generator speaks to each target over the same raw WebSocket client.
 *
 * - `switchboard`: SPEC §3 frames. Ready on `welcome` (the upgrade carries the session cookie).
 * - `limit`: the reference in bench/servers/limit.ts speaks a subset of the same frames
 *   (`subscribe`/`publish` → `ack`, `message` out) with no auth: ready as soon as the 101 arrives.
 * - `limit-spec`: the same server sending the SPEC's whole `message` frame (opt-in, never a default).
 * - `socketio`: Engine.IO v4 + Socket.IO v5 packets over `transport=websocket`:
 *   `0{..}` open → send `40` → `40{..}` connected; `42<id>[event,...]` with an ack id →
 *   `43<id>[...]`; the server's ping `2` is answered with `3`.
 */
import type { WsConn } from "./ws.ts";

export type TargetName = "limit" | "limit-spec" | "socketio" | "switchboard";
/** The default targets; `limit-spec` runs only when named. */
export const TARGETS: TargetName[] = ["limit", "socketio", "switchboard"];
export const ALL_TARGETS: TargetName[] = [...TARGETS, "limit-spec"];

export type DialectEvent =
  | { kind: "ready" }
  | { kind: "ack"; ref: number }
  | { kind: "error"; ref: number; code: string }
  | null;

export interface Dialect {
  path: string;
  /** Called when the 101 arrived; may answer `ready` at once. */
  open(c: WsConn): DialectEvent;
  /** Interprets a frame that carries no benchmark stamp; may reply on `c`. */
  text(c: WsConn, text: string): DialectEvent;
  subscribe(topic: string, ref: number): string;
  /** `data` is a JSON text (the stamp object). */
  publish(topic: string, ref: number, data: string): string;
}

const jsonFrames = (readyOnOpen: boolean): Dialect => ({
  path: "/ws",
  open: () => (readyOnOpen ? { kind: "ready" } : null),
  text(_c, text) {
    let f: { type?: string; ref?: number; code?: string };
    try {
      f = JSON.parse(text);
    } catch {
      return { kind: "error", ref: -1, code: "unparsable" };
    }
    switch (f.type) {
      case "welcome":
        return { kind: "ready" };
      case "ack":
        return { kind: "ack", ref: f.ref ?? -1 };
      case "error":
        return { kind: "error", ref: f.ref ?? -1, code: f.code ?? "?" };
      default:
        return null;
    }
  },
  subscribe: (topic, ref) => `{"type":"subscribe","topic":"${topic}","ref":${ref}}`,
  publish: (topic, ref, data) => `{"type":"publish","topic":"${topic}","ref":${ref},"data":${data}}`,
});

const socketio: Dialect = {
  path: "/socket.io/?EIO=4&transport=websocket",
  open: () => null,
  text(c, text) {
    const t = text.charCodeAt(0);
    if (t === 50 /* 2 ping */ && text.length === 1) {
      c.send("3");
      return null;
    }
    if (t === 48 /* 0 open */) {
      c.send("40");
      return null;
    }
    if (t !== 52 /* 4 message */) return null;
    const p = text.charCodeAt(1);
    if (p === 48 /* 40 connect */) return { kind: "ready" };
    if (p === 51 /* 43 ack */) return { kind: "ack", ref: Number.parseInt(text.slice(2), 10) };
    if (p === 52 /* 44 connect_error */) return { kind: "error", ref: -1, code: text.slice(2, 80) };
    return null;
  },
  subscribe: (topic, ref) => `42${ref}["join","${topic}"]`,
  publish: (topic, ref, data) => `42${ref}["pub","${topic}",${data}]`,
};

export const DIALECTS: Record<TargetName, Dialect> = {
  limit: jsonFrames(true),
  "limit-spec": jsonFrames(true),
  switchboard: jsonFrames(false),
  socketio,
};
