/**
 * `bun run example`: the example app (app.ts) and Switchboard beside it, configured to trust the
 * app's login. Open http://localhost:3001 and sign in as alice / alice-password or bob / bob-password.
 *
 * EXAMPLE_PORT (3001), SWITCHBOARD_PORT (3000), EXAMPLE_HOST (localhost: the host the browser
 * uses for both; the app's cookie must reach Switchboard's host) and EXAMPLE_USERS can be changed;
 * everything else in the environment is handed to Switchboard as it is.
 */
import { AUDIENCE, COOKIE, createExampleApp } from "./app.ts";

const host = process.env.EXAMPLE_HOST ?? "localhost";
const appPort = Number(process.env.EXAMPLE_PORT ?? 3001);
const sbPort = Number(process.env.SWITCHBOARD_PORT ?? 3000);
const origin = `http://${host}:${appPort}`;
const switchboardUrl = `http://${host}:${sbPort}`;

const app = await createExampleApp({ origin, switchboardUrl, users: process.env.EXAMPLE_USERS ?? "alice:alice-password,bob:bob-password" });
// The key set is up before Switchboard starts, so its first fetch finds the key.
const server = Bun.serve({ hostname: host === "localhost" ? "127.0.0.1" : host, port: appPort, fetch: app.fetch });

// On Linux, Switchboard dies with this command however it ends (setpriv's parent-death signal).
const dieWithParent = Bun.which("setpriv") ? ["setpriv", "--pdeathsig", "TERM", "--"] : [];
const switchboard = Bun.spawn([...dieWithParent, "bun", "src/server.ts"], {
  cwd: new URL("../..", import.meta.url).pathname,
  env: {
    ...process.env,
    PORT: String(sbPort),
    HOST: process.env.HOST ?? (host === "localhost" ? "127.0.0.1" : host),
    AUTH_JWKS_URL: `http://127.0.0.1:${server.port}/.well-known/jwks.json`,
    AUTH_ISSUER: origin,
    AUTH_AUDIENCE: AUDIENCE,
    AUTH_COOKIE: COOKIE,
    ALLOWED_ORIGINS: origin,
  },
  stdio: ["ignore", "inherit", "inherit"],
});
console.log(`example app on ${origin} (sign in as alice / alice-password), Switchboard on ${switchboardUrl}`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    switchboard.kill(signal);
  });
}
const code = await switchboard.exited;
await server.stop(true);
process.exit(stopping ? 0 : code);
