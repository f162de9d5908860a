/**
 * The server's permissions (SPEC §5): its namespaces, and the AUTHZ_URL client when the app is to
 * be asked. The one place they are put together.
 */
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { AuthzClient } from "./authz.ts";
import { loadNamespaces } from "./namespaces.ts";
import { Permissions } from "./permissions.ts";

/** Throws ConfigError (one line) for a bad NAMESPACES / NAMESPACES_FILE. */
export function createPermissions(config: Config, log: Logger, metrics?: Metrics): Permissions {
  const namespaces = loadNamespaces(config);
  let app: AuthzClient | null = null;
  if (config.authzUrl !== undefined) {
    // loadConfig refuses AUTHZ_URL without WEBHOOK_SECRET.
    const secret = config.webhookSecret!;
    app = new AuthzClient({
      url: config.authzUrl,
      secret,
      onUnavailable: (why) => log.warn("AUTHZ_URL did not decide", { why }),
      onAnswer: (outcome) => metrics?.authzAnswers.inc({ outcome }),
    });
  }
  return new Permissions(namespaces, app);
}
