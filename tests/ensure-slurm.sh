#!/usr/bin/env bash
# Make sure the Slurm tests can start a small cluster inside the SSH lab (tests/sshlab_slurm.py):
# Debian's Slurm (slurm-wlm: slurmctld, slurmd and the client commands) and MUNGE, its
# authentication daemon. On Debian/Ubuntu as root: install what is missing, without starting the
# machine-wide daemons the packages ship (the lab starts its own, one set per lab host, with a
# configuration and a key of its own; nothing in /etc is used).
set -euo pipefail

say() { echo "ensure-slurm: $*" >&2; }

policy=/usr/sbin/policy-rc.d
ours=          # set when this script wrote the policy-rc.d below, which it then removes
cleanup() {
  if [ -n "$ours" ]; then rm -f "$policy"; fi
}
trap cleanup EXIT

missing=()
command -v slurmctld >/dev/null 2>&1 || missing+=(slurmctld)
command -v slurmd >/dev/null 2>&1 || missing+=(slurmd)
command -v sbatch >/dev/null 2>&1 && command -v scontrol >/dev/null 2>&1 || missing+=(slurm-client)
command -v munged >/dev/null 2>&1 && command -v mungekey >/dev/null 2>&1 || missing+=(munge)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing ${missing[*]} and cannot install them (not root on Debian/Ubuntu)"
    exit 1
  fi
  say "installing ${missing[*]} (slurm-wlm's daemons and client, and munge)"
  # The maintainer scripts would start a machine-wide munged, slurmctld and slurmd: the lab runs
  # its own in the lab hosts' namespaces and wants none here. A policy-rc.d answering 101
  # forbids the start; an existing one (Docker images ship one) is left as it is.
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    ours=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
say "$(slurmctld -V 2>&1) and $(munged --version 2>&1 | head -n 1) ready"
