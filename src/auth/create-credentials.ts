/**
 * The server's credential check, its identity sources in order: ticket, token, session cookie.
 * The one place that order is written.
 */
import { Credentials, type CredentialsOptions } from "./credentials.ts";
import { sessionCookieSource, ticketSource, tokenSource } from "./sources.ts";
import type { SessionSigner } from "./sessions.ts";
import type { Stores } from "../stores/stores.ts";

export function createCredentials(signer: SessionSigner, stores: Pick<Stores, "tickets" | "revocations">, onRefused?: CredentialsOptions["onRefused"]): Credentials {
  return new Credentials({
    sources: [ticketSource(stores.tickets), tokenSource(signer), sessionCookieSource(signer)],
    revocations: stores.revocations,
    onRefused,
  });
}
