# Switchboard on Fly.io (or any container host). Pinned runtime: the exact Bun the project is
# tested on (FACTS.md), never `latest`.
FROM oven/bun:1.4.5 AS base
WORKDIR /app

# Production dependencies only, exactly as locked: a lockfile out of date with package.json fails
# the build instead of resolving something new.
FROM base AS deps
COPY package.json bun.lock ./
# Local fixes to dependencies (package.json's patchedDependencies), applied by the install.
COPY patches ./patches
RUN bun install --frozen-lockfile --production

FROM base AS runtime
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY package.json bun.lock tsconfig.json ./
COPY src ./src
# The image's unprivileged `bun` user (uid 1000) runs the server; it owns nothing it could rewrite.
USER bun
EXPOSE 8080
# Bun is PID 1 and handles SIGTERM/SIGINT itself (drain: 1012 closes spread over DRAIN_MS, exit 0).
CMD ["bun", "src/server.ts"]
