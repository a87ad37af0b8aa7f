#!/usr/bin/env bash
# Gathers the build context's ./wheels for the DeepSpeed test image: DeepSpeed's source
# distribution (PyPI has no wheel of it) and its extra dependencies as wheels for the image's
# Python (3.11, manylinux x86_64), whatever Python runs this script. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
mkdir -p "$here/wheels"
grep -v '^deepspeed==' "$here/requirements.txt" | grep -v '^#' > "$here/wheels/.binary-requirements.txt"
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.11 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$here/wheels" -r "$here/wheels/.binary-requirements.txt" 2>&1 \
  | { grep -v "^WARNING: Location" >&2 || true; }
rm -f "$here/wheels/.binary-requirements.txt"
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary=:all: \
  -d "$here/wheels" "$(grep '^deepspeed==' "$here/requirements.txt")" 2>&1 \
  | { grep -v "^WARNING: Location" >&2 || true; }
echo "prepare: wheels in $here/wheels ($(du -sh "$here/wheels" | cut -f1))" >&2
