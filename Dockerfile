# One image for every process of the platform: the gateway, any subgraph, or everything in one
# process, chosen by the argument (deploy/docker/entrypoint.sh):
#   docker build -t agent-platform .
#   docker run agent-platform gateway            # dist/gateway.mjs
#   docker run agent-platform subgraph agents    # dist/subgraph.mjs agents
#   docker run agent-platform all                # every subgraph and the gateway (npm run serve)
# Multi-stage: the bundles are built with the devDependencies; the image holds only the production
# ones and runs as the unprivileged `node` user (uid 1000). README, Deployment.

FROM node:20-bookworm-slim AS production-dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 DATA_DIR=/data
WORKDIR /app
COPY --from=production-dependencies /app/node_modules ./node_modules
COPY . .
COPY --from=build /app/dist ./dist
RUN mkdir -p /data && chown node:node /data && chmod +x deploy/docker/entrypoint.sh
USER node
VOLUME ["/data"]
EXPOSE 4000 4001 4002 4003 4004 4005 4006 4007 4008 4009
ENTRYPOINT ["deploy/docker/entrypoint.sh"]
CMD ["all"]
