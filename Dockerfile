# syntax=docker/dockerfile:1
# The Flock coordinator (also the image of the on-demand processor: another command, same build).
#
#   docker build -t flock .                 # BASE: Debian trixie (Node.js 20 from Debian's own packages)
#   buildah bud --format docker --build-arg BASE=localhost/debian-trixie-base -t flock .   # no registry: deploy/README.md
#
# Multi-stage: the build stage has the toolchain (pnpm, a C++ compiler for better-sqlite3), the
# runtime stage only Node.js, the built server and its production dependencies, run as a non-root user.
ARG BASE=docker.io/library/debian:trixie-slim

FROM ${BASE} AS build
ENV DEBIAN_FRONTEND=noninteractive
# Debian trixie's nodejs is 20.19 (the engines' minimum); libnode-dev has the headers node-gyp
# compiles better-sqlite3 against (nodedir=/usr: no header download).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm libnode-dev python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Behind a TLS-intercepting proxy: --build-arg NODE_EXTRA_CA_CERTS=<its CA, mounted into the build>.
ARG NODE_EXTRA_CA_CERTS
RUN npm install --global pnpm@10.34.9 && npm cache clean --force
ENV npm_config_nodedir=/usr CI=true
WORKDIR /app
# Manifests first: the dependency layer is rebuilt only when they change.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
COPY server/package.json server/
COPY client-sdk/package.json client-sdk/
COPY demo-app/package.json demo-app/
COPY e2e/package.json e2e/
RUN pnpm install --frozen-lockfile --filter @flock/server...
COPY tsconfig.base.json ./
COPY client-sdk/ client-sdk/
COPY server/ server/
RUN pnpm --filter @flock/server... build
# Production dependencies only, for the runtime stage. The SDK's TensorFlow.js packages are peer
# dependencies, met in the workspace by its devDependencies, which --prod drops: the SDK gets the
# server's (the same 4.22.0 packages, so one copy in the process).
RUN pnpm install --frozen-lockfile --prod --filter @flock/server... \
 && for pkg in tfjs tfjs-backend-wasm; do ln -sfn ../../../server/node_modules/@tensorflow/$pkg client-sdk/node_modules/@tensorflow/$pkg; done \
 && rm -rf server/src server/test server/scripts client-sdk/src client-sdk/test

FROM ${BASE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
 && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin flock \
 && mkdir -p /data && chown flock:flock /data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules/ node_modules/
COPY --from=build /app/client-sdk/ client-sdk/
COPY --from=build /app/server/ server/
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 FLOCK_DATA_DIR=/data
USER flock:flock
VOLUME /data
# 8080: REST, dashboard, devices' sockets and inference; 8081: devices' uploads (FLOCK_UPLOAD_PORT).
EXPOSE 8080 8081
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/api/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "server/dist/main.js"]
