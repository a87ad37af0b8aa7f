#!/bin/bash
# FastChat's web UI in one command: the tutorial starts these three in three shells.
#   controller  -> model_worker (registers with it) -> gradio_web_server (asks the controller)
# Settings come from the environment (the manifest's `web` params):
#   MODEL_PATH, DEVICE, CONTROLLER_PORT, WORKER_PORT, WEB_PORT
# Stopping this script (Ctrl-C, SIGTERM) stops all three. How long start-up may take is the
# manifest's `ready.timeout` (`envctl exec web --detach` stops all three after it); attached, it
# waits without a deadline, as the tutorial's three shells do, and ends when one exits while starting.
set -euo pipefail

: "${MODEL_PATH:?set MODEL_PATH}"
DEVICE=${DEVICE:-npu}
CONTROLLER_PORT=${CONTROLLER_PORT:-21001}
WORKER_PORT=${WORKER_PORT:-21002}
WEB_PORT=${WEB_PORT:-7860}
CONTROLLER=http://127.0.0.1:$CONTROLLER_PORT
LOGS=${LOGS:-/tmp/fastchat-web}
mkdir -p "$LOGS"

children=()
stop_all() {
  for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all EXIT INT TERM

# Polls `check` once a second until it succeeds; fails if `pid` dies.
wait_until() {
  local what=$1 pid=$2 check=$3
  until eval "$check" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "fastchat-web: the $what exited; its log:" >&2
      tail -n 50 "$LOGS/$what.log" >&2 || true
      return 1
    fi
    sleep 1
  done
}

python3 -m fastchat.serve.controller --host 127.0.0.1 --port "$CONTROLLER_PORT" >"$LOGS/controller.log" 2>&1 &
children+=($!)
# The controller answers POST /list_models as soon as it is up (with no models yet).
wait_until controller "${children[-1]}" \
  "python3 -c 'import urllib.request; urllib.request.urlopen(urllib.request.Request(\"$CONTROLLER/list_models\", method=\"POST\"), timeout=2)'"
echo "fastchat-web: controller up on port $CONTROLLER_PORT"

python3 -m fastchat.serve.model_worker --model-path "$MODEL_PATH" --device "$DEVICE" \
  --host 127.0.0.1 --port "$WORKER_PORT" --worker-address "http://127.0.0.1:$WORKER_PORT" \
  --controller-address "$CONTROLLER" >"$LOGS/model_worker.log" 2>&1 &
children+=($!)
echo "fastchat-web: loading $MODEL_PATH on $DEVICE (log: $LOGS/model_worker.log) ..."
# The worker is usable once the controller lists a model.
wait_until model_worker "${children[-1]}" \
  "python3 -c 'import json, sys, urllib.request; r = urllib.request.Request(\"$CONTROLLER/list_models\", method=\"POST\"); sys.exit(0 if json.load(urllib.request.urlopen(r, timeout=2))[\"models\"] else 1)'"
echo "fastchat-web: model registered; web UI on http://<this host>:$WEB_PORT/"

python3 -m fastchat.serve.gradio_web_server --host 0.0.0.0 --port "$WEB_PORT" --controller-url "$CONTROLLER" &
children+=($!)
wait "${children[-1]}"
