#!/usr/bin/env bash
# Prepares the build context of the CPU reference image on a machine that reaches no container
# registry: a Debian bookworm base imported from a debootstrap rootfs, and the Python wheels
# gathered here with pip. Idempotent: what is already there is kept.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
base="${ENVCTL_CPU_BASE:-envctl/debian-bookworm-python:local}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
python="${PYTHON:-python3}"

if ! docker image inspect "$base" >/dev/null 2>&1; then
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
fi

mkdir -p "$here/wheels"
# Wheels for the image's Python (3.11, manylinux x86_64), whatever Python runs this script.
"$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
  --python-version 3.11 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$here/wheels" -r "$here/requirements.txt" 2>&1 \
  | { grep -v "^WARNING: Location" >&2 || true; }
echo "prepare: wheels in $here/wheels ($(du -sh "$here/wheels" | cut -f1))" >&2
