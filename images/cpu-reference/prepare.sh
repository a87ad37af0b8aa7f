#!/usr/bin/env bash
# Prepares the build context of the CPU reference image on a machine that reaches no container
# registry: a Debian bookworm base imported from a debootstrap rootfs, and the Python wheels
# gathered here with pip. Idempotent: what is already there is kept.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"

# The Debian base with Python (shared with the tests' stand-in vendor images).
bash "$here/../debian-python-base.sh"

mkdir -p "$here/wheels"
# Wheels for the image's Python (3.11, manylinux x86_64), whatever Python runs this script.
"$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
  --python-version 3.11 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$here/wheels" -r "$here/requirements.txt" 2>&1 \
  | { grep -v "^WARNING: Location" >&2 || true; }
echo "prepare: wheels in $here/wheels ($(du -sh "$here/wheels" | cut -f1))" >&2
