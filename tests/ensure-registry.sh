#!/usr/bin/env bash
# Make sure the registry tests (tests/servers/registry.py) can start a real registry on loopback:
# Debian's `docker-registry` package (the CNCF Distribution registry, 2.8), whose binary each
# test runs on a free port with a configuration of its own. On Debian/Ubuntu as root: install it
# when missing, with the package's own service kept from starting (the tests start theirs).
set -euo pipefail

say() { echo "ensure-registry: $*" >&2; }

binary=/usr/bin/docker-registry
policy=/usr/sbin/policy-rc.d
ours=
cleanup() { if [ -n "$ours" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

if [ ! -x "$binary" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing docker-registry and cannot install it (not root on Debian/Ubuntu)"
    exit 1
  fi
  say "installing docker-registry"
  # The package would start a system-wide registry on port 5000: a policy-rc.d answering 101
  # forbids that start (an existing one is left as it is).
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    ours=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
fi
say "$("$binary" --version 2>&1 | head -n 1) ready"
