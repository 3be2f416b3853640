#!/bin/sh
# The image's entry: which process this container runs. `exec` makes node PID 1, so SIGTERM from
# the runtime reaches the process's own graceful shutdown (runtime/shutdown-signals.ts).
set -eu
role="${1:-all}"
[ "$#" -gt 0 ] && shift
case "$role" in
  gateway)
    exec node --enable-source-maps --require=./gateway/preload/federation-exports.cjs --max-semi-space-size=32 --heap-growing-percent=50 dist/gateway.mjs "$@" ;;
  subgraph)
    [ "$#" -ge 1 ] || { echo "usage: subgraph <name> (a name from supergraph.yaml)" >&2; exit 64; }
    exec node --enable-source-maps dist/subgraph.mjs "$@" ;;
  all)
    exec node --enable-source-maps --require=./gateway/preload/federation-exports.cjs dist/start.mjs "$@" ;;
  *)
    echo "usage: gateway | subgraph <name> | all (got \"$role\")" >&2
    exit 64 ;;
esac
