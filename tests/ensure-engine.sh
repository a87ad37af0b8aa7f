#!/usr/bin/env bash
# Make sure a Docker engine answers and the tools the integration tests build images with are
# here. On a fresh Debian/Ubuntu machine as root: install Debian's docker.io and busybox-static,
# start dockerd in the background and wait for it. Anywhere else, say what is missing.
set -euo pipefail

missing=()
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
# openssl: the self-signed certificate of the TLS git server (tests/servers/git_faults.py).
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
engine_up() { docker info >/dev/null 2>&1; }
if ! command -v docker >/dev/null 2>&1 || { ! engine_up && ! command -v dockerd >/dev/null 2>&1; }; then
  missing+=(docker.io)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-engine: missing ${missing[*]} and cannot install them (not root on Debian/Ubuntu)" >&2
    exit 1
  fi
  echo "ensure-engine: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! engine_up; then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-engine: no Docker engine answers; start one (sudo systemctl start docker)" >&2
    exit 1
  fi
  echo "ensure-engine: starting dockerd (log: /var/log/envctl-test-dockerd.log)" >&2
  nohup dockerd >/var/log/envctl-test-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    engine_up && break
    sleep 1
  done
fi
if ! engine_up; then
  echo "ensure-engine: dockerd did not answer within 60s; its log:" >&2
  tail -n 30 /var/log/envctl-test-dockerd.log >&2 || true
  exit 1
fi
echo "ensure-engine: Docker $(docker version --format '{{.Server.Version}}') answers" >&2
