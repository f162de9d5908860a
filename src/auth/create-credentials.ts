/**
 * The server's credential check, its identity sources in order: ticket, token (Switchboard's, then
 * the app's), session cookie, the app's cookie (AUTH_COOKIE), the app's verdict (AUTH_CONNECT_URL).
 * The one place that order is written (SPEC §4 "precedence at upgrade").
 */
import { Credentials, type CredentialsOptions, type IdentitySource } from "./credentials.ts";
import { sessionCookieSource, ticketSource, tokenSource } from "./sources.ts";
import { anyTokenSource, appCookieSource, connectSource, type NoteRefusal } from "./app-sources.ts";
import { AppTokenVerifier } from "./app-tokens.ts";
import { ConnectClient } from "./connect.ts";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { SessionSigner } from "./sessions.ts";
import type { Stores } from "../stores/stores.ts";

/** Identity from the application (SPEC §4); each part only when configured. */
export interface AppIdentitySources {
  verifier: AppTokenVerifier | null;
  /** AUTH_COOKIE: the app cookie's name. */
  cookieName: string | undefined;
  connect: ConnectClient | null;
  note: NoteRefusal;
}

export function createCredentials(
  signer: SessionSigner,
  stores: Pick<Stores, "tickets" | "credentialRevocations">,
  onRefused?: CredentialsOptions["onRefused"],
  app?: AppIdentitySources,
): Credentials {
  const verifier = app?.verifier?.enabled ? app.verifier : null;
  const sources: IdentitySource[] = [
    ticketSource(stores.tickets),
    verifier !== null ? anyTokenSource(signer, verifier, app!.note) : tokenSource(signer),
    sessionCookieSource(signer),
  ];
  if (verifier !== null && app?.cookieName !== undefined) sources.push(appCookieSource(verifier, app.cookieName, app.note));
  if (app?.connect) sources.push(connectSource(app.connect, app.note));
  return new Credentials({ sources, revocations: stores.credentialRevocations, onRefused });
}

/**
 * The app identity sources the configuration asks for. The key set's first fetch starts now and
 * is not waited for: a provider that is down is one warning line, and the server starts anyway.
 */
export function appIdentity(config: Config, log: Logger): AppIdentitySources {
  const verifier = new AppTokenVerifier(config, { log });
  void verifier.start();
  return {
    verifier: verifier.enabled ? verifier : null,
    cookieName: config.authCookie,
    connect: ConnectClient.from(config, { log }),
    // Why an app credential was refused, for operators setting up a provider; never the credential.
    note: (reason, via) => log.info("app credential refused", { reason, via }),
  };
}
