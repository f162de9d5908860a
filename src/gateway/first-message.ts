/**
 * First-message authentication (SPEC §3): a socket with neither ticket nor cookie must send
 * `{type:"auth", token}` as its first frame. Anything else first → 1008; a bad token → 4001;
 * the credential store unreachable → 1013 (not the client's fault: try again later).
 */
import { Close } from "../protocol/codes.ts";
import { errorFields } from "../log.ts";
import type { Identity } from "../auth/credentials.ts";
import type { ConnectionHost } from "./connection-host.ts";
import { isObject } from "./frame-input.ts";

export type FirstMessage = { identity: Identity } | { close: number; reason: string };

export async function checkFirstMessage(host: ConnectionHost, parsed: unknown, who: { connectionId: string; ip: string }): Promise<FirstMessage> {
  const isAuth = isObject(parsed) && parsed.type === "auth";
  host.metrics.framesIn.inc(isAuth ? "auth" : "invalid");
  if (!isAuth) {
    host.noteAuthFailure("protocol", who);
    return { close: Close.policy, reason: "the first frame must be auth" };
  }
  let outcome;
  try {
    outcome = await host.authenticate(typeof parsed.token === "string" ? parsed.token : "");
  } catch (error) {
    host.log.warn("token check failed", { connectionId: who.connectionId, ...errorFields(error) });
    return { close: Close.overloaded, reason: "broker unavailable; try again later" };
  }
  if (outcome?.ok === true) return { identity: outcome.identity };
  host.noteAuthFailure(outcome?.reason ?? "bad_token", who);
  return { close: Close.unauthorized, reason: outcome?.message ?? "invalid or expired token" };
}
