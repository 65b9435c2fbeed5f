#!/usr/bin/env bash
# `make run`: the reference coordinator with the demo catalog, and an agent registered with it.
# Ctrl-C stops the agent (its containers are removed, the worker unregistered), then the
# coordinator. The coordinator runs in its own session so that Ctrl-C reaches only the agent.
set -euo pipefail
BIN=${BIN:-.venv/bin}
STATE=${RMA_STATE_DIR:-$PWD/.state}
PORT=${RMA_DEMO_PORT:-8080}
ADMIN=${RMA_COORDINATOR_ADMIN_TOKEN:-demo-admin}
URL="http://127.0.0.1:$PORT"
mkdir -p "$STATE"

# SO_REUSEADDR as the coordinator binds: connections of a previous run in TIME_WAIT are no reason.
if ! python3 -c "import socket as k; s=k.socket(); s.setsockopt(k.SOL_SOCKET, k.SO_REUSEADDR, 1); s.bind(('127.0.0.1', $PORT))" 2>/dev/null; then
  echo "run.sh: port $PORT is in use; set RMA_DEMO_PORT to another port" >&2
  exit 1
fi
setsid "$BIN/rma-coordinator" --host 127.0.0.1 --port "$PORT" --db "$STATE/coordinator.db" \
  --catalog manifests/demo/catalog.yaml --admin-token "$ADMIN" --heartbeat-interval 10 \
  --allow-private-workers \
  >"$STATE/coordinator.log" 2>&1 </dev/null &
COORD=$!
trap 'kill "$COORD" 2>/dev/null; wait "$COORD" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('$URL/health', timeout=1)" \
    2>/dev/null && break
  sleep 0.1
done
cat <<MSG
reference coordinator: $URL  (API docs $URL/docs, admin token "$ADMIN", log $STATE/coordinator.log)
workers:               curl -H 'Authorization: Bearer $ADMIN' $URL/api/admin/workers
demo page (tier 2):    http://127.0.0.1:18080/
your page (the agent): http://127.0.0.1:9321/  (pause, resume, what it runs, what it cost)
Ctrl-C stops the agent: its containers are removed and the worker unregistered.
MSG
# The demo's image is built on this machine (`make demo-images`): no registry has it, so the
# agent is allowed to run it as found (it refuses a coordinator's local-only image otherwise).
RMA_STATE_DIR=$STATE RMA_PUBLISH_ADDRESS=${RMA_PUBLISH_ADDRESS:-127.0.0.1} \
  RMA_IMAGE_REFRESH_INTERVAL=${RMA_IMAGE_REFRESH_INTERVAL:-0} \
  RMA_ALLOW_LOCAL_IMAGES=${RMA_ALLOW_LOCAL_IMAGES:-true} \
  "$BIN/rma-worker" --coordinator "$URL"
