#!/usr/bin/env bash
# The Debian bookworm base with Python that the locally built images start FROM (the CPU
# reference image, the stand-in vendor images of the tests): a debootstrap rootfs imported into
# the engine, because no container registry is reachable. Idempotent: an existing base is kept.
set -euo pipefail
base="${ENVCTL_CPU_BASE:-envctl/debian-bookworm-python:local}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$base" >/dev/null 2>&1; then
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "prepare: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
echo "prepare: debootstrap bookworm into $root (about a minute)" >&2
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$root" "$mirror" >/dev/null
tar -C "$root" -c . | docker import - "$base" >/dev/null
echo "prepare: imported $base" >&2
