#!/usr/bin/env bash
# Production runs without devDependencies (no tsx, no esbuild): build the bundles here, copy the
# repository's tracked files and dist/ to a clean directory, `npm ci --omit=dev` there, start
# everything with `npm run serve` in production mode, and query it through GraphQL and REST as a
# client would. CI runs it (.ci/run); it takes a few minutes (better-sqlite3 is compiled).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

npm run --silent build

WORK=$(mktemp -d /tmp/production-check.XXXXXX)
SERVER_PID=
# With DATABASE_URL (CI): schemas and channels of this run only, so another version's run on the
# same server (newer migrations in the default schemas) cannot get in its way; dropped at the end.
PREFIX="prodcheck$(basename "$WORK" | tr -dc 'a-zA-Z0-9' | tr 'A-Z' 'a-z')_"
export DATABASE_SCHEMA_PREFIX="$PREFIX" EVENT_CHANNEL_PREFIX="$PREFIX" RATE_LIMIT_PREFIX="${PREFIX}ratelimit"
cleanup() {
  # Its own process group (setsid): npm, the shell and node all go.
  if [ -n "$SERVER_PID" ]; then kill -KILL -- "-$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "${DATABASE_URL:-}" ]; then
    (cd "$ROOT" && node -e "
const pg = require('pg'); const c = new pg.Client({ connectionString: process.env.DATABASE_URL });
c.connect().then(() => c.query(\"select nspname from pg_namespace where nspname like '$PREFIX%'\"))
  .then((r) => Promise.all(r.rows.map((x) => c.query('drop schema if exists \"' + x.nspname + '\" cascade'))))
  .finally(() => c.end());") || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

git ls-files -z | (cd "$ROOT" && xargs -0 cp --parents -t "$WORK")
cp -r dist "$WORK/dist"
cd "$WORK"
npm ci --omit=dev --no-audit --no-fund --loglevel=error
for dev in tsx esbuild typescript vitest; do
  if [ -e "node_modules/$dev" ]; then echo "devDependency $dev was installed" >&2; exit 1; fi
done

# Free ports from the system (not the defaults: a platform may be running on this machine).
free_port() { node -e "const s=require('node:net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
export NODE_ENV=production DATA_DIR="$WORK/data" LOG_LEVEL=info
# The gateway and every subgraph of supergraph.yaml (npm run serve starts them all).
SUBGRAPH_PORT_VARIABLES=$(node --input-type=module -e "
import { readFileSync } from 'node:fs'; import { parse } from 'yaml';
console.log(Object.keys(parse(readFileSync('supergraph.yaml', 'utf8')).subgraphs).map((n) => n.toUpperCase() + '_PORT').join(' '));")
for variable in GATEWAY_PORT $SUBGRAPH_PORT_VARIABLES; do export "$variable=$(free_port)"; done
GATEWAY_SIGNING_SECRET=$(node -e "console.log(require('node:crypto').randomBytes(32).toString('hex'))")
AUTH_JWT_SECRET=$(node -e "console.log(require('node:crypto').randomBytes(32).toString('hex'))")
export GATEWAY_SIGNING_SECRET AUTH_JWT_SECRET AUTH_ISSUER=https://issuer.example AUTH_AUDIENCE=agent-platform

if curl -s -o /dev/null "http://127.0.0.1:$GATEWAY_PORT/readyz"; then echo "port $GATEWAY_PORT is taken" >&2; exit 1; fi
setsid npm run --silent serve >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 120); do
  if curl -sf "http://127.0.0.1:$GATEWAY_PORT/readyz" >/dev/null; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$WORK/serve.log" >&2; echo "npm run serve exited" >&2; exit 1; fi
  sleep 0.5
done
curl -sf "http://127.0.0.1:$GATEWAY_PORT/readyz" >/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }

# A token as the identity provider would issue it (jose is a production dependency).
TOKEN=$(node --input-type=module -e "
import { SignJWT } from 'jose';
const now = Math.floor(Date.now() / 1000);
console.log(await new SignJWT({ tenant: 'acme', scope: 'admin agents:read agents:write tasks:read tasks:write' })
  .setProtectedHeader({ alg: 'HS256' }).setSubject('ci@acme').setIssuer(process.env.AUTH_ISSUER)
  .setAudience(process.env.AUTH_AUDIENCE).setIssuedAt(now).setExpirationTime(now + 600)
  .sign(new TextEncoder().encode(process.env.AUTH_JWT_SECRET)));")

ANSWER=$(curl -s "http://127.0.0.1:$GATEWAY_PORT/graphql" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" \
  -d '{"query":"mutation { registerAgent(input: {name: \"prod-check\"}) { id name } }"}')
echo "$ANSWER" | grep -q '"name":"prod-check"' || { echo "GraphQL mutation failed: $ANSWER" >&2; cat "$WORK/serve.log" >&2; exit 1; }
REST=$(curl -s "http://127.0.0.1:$GATEWAY_PORT/v1/agents" -H "authorization: Bearer $TOKEN")
echo "$REST" | grep -q 'prod-check' || { echo "REST read failed: $REST" >&2; exit 1; }

# SIGTERM to the process group, as a terminal or systemd sends it: npm forwards its copy too, and
# the services count the two as one graceful stop. npm itself then exits 143 (killed by SIGTERM).
kill -TERM -- "-$SERVER_PID"
for _ in $(seq 1 60); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$SERVER_PID" 2>/dev/null; then echo "npm run serve did not stop on SIGTERM" >&2; exit 1; fi
SERVER_PID=
for stopped in 'gateway stopped' 'governance subgraph stopped' 'agents subgraph stopped' 'orchestration subgraph stopped'; do
  grep -q "$stopped" "$WORK/serve.log" || { echo "no \"$stopped\" in the log" >&2; cat "$WORK/serve.log" >&2; exit 1; }
done
if grep -q 'second signal\|shutdown failed' "$WORK/serve.log"; then cat "$WORK/serve.log" >&2; exit 1; fi
echo "production start without devDependencies: ok (GraphQL + REST through the gateway, clean stop)"
