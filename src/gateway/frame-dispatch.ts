/**
 * One client frame, taken off the socket's queue: parsed once, validated (frame-input.ts), counted,
 * and handed to the handler of its family — the session's (socket-session.ts), topic frames
 * (topic-frames.ts) or publishes (publish-frames.ts). A handler's refusal becomes the `error` frame.
 */
import { ErrorCode, SwitchboardError } from "../protocol/codes.ts";
import type { ClientFrame } from "../protocol/frames.ts";
import { parseJson, scanJson } from "../protocol/parse.ts";
import { refOf, validateFrame } from "./frame-input.ts";
import { authenticate, refresh, type SessionSocket } from "./socket-session.ts";
import { onPresence, onSubscribe, onUnsubscribe, type TopicFrameSocket } from "./topic-frames.ts";
import { onPublish, type PublishingSocket } from "./publish-frames.ts";

export type FrameSocket = SessionSocket & TopicFrameSocket & PublishingSocket;

export async function handleFrame(conn: FrameSocket, raw: string): Promise<void> {
  const scanned = scanJson(raw);
  const parsed = parseJson(raw, scanned);
  if (conn.state === "awaiting-auth") return authenticate(conn, parsed);
  const ref = refOf(parsed);
  const result = validateFrame(raw, parsed, scanned);
  conn.host.metrics.framesIn.inc("frame" in result ? result.frame.type : "invalid");
  try {
    if ("error" in result) throw result.error;
    await dispatch(conn, result.frame);
  } catch (error) {
    conn.sendError(ref, error);
  }
}

/** Every check goes to the host's one decision point (auth/permissions.ts). */
function dispatch(conn: FrameSocket, frame: ClientFrame): Promise<void> | void {
  switch (frame.type) {
    case "auth":
      throw new SwitchboardError(ErrorCode.badRequest, "already authenticated");
    case "refresh":
      return refresh(conn, frame.ref, frame.token);
    case "ping":
      conn.sendJson({ type: "pong", ref: frame.ref });
      return;
    case "subscribe":
      return onSubscribe(conn, frame);
    case "unsubscribe":
      return onUnsubscribe(conn, frame);
    case "publish":
      return onPublish(conn, frame);
    case "presence":
      return onPresence(conn, frame);
  }
}
