#!/usr/bin/env bash
# A second Docker engine for the tests: a current Docker with the containerd image store (image
# identity = manifest digest), beside the machine's own engine (Debian 12's Docker 20.10, the
# classic store). The integration tests run their image, lifecycle and bake cases against both.
#
#   bash tests/ensure-containerd-engine.sh          set it up (idempotent) and start it
#   bash tests/ensure-containerd-engine.sh --stop   stop it (the root file system is kept)
#
# What it is: Debian's docker.io from suite $SUITE (28.x when written), debootstrapped once into
# $STATE/rootfs, run with /etc/docker/daemon.json-equivalent settings
#   {"features": {"containerd-snapshotter": true}, "bridge": "none", "iptables": false, "ip6tables": false}
# in a mount and network namespace of its own (unshare), its socket at $SOCKET on the machine.
#
# Why these choices:
# - Own network namespace: with "bridge": "none" a dockerd deletes any docker0 it can see, the
#   machine engine's too. In its own namespace it sees only its loopback. Containers get no
#   default bridge; a container without a network setting gets the "none" network (as on the
#   SSH lab's engines, which also run with --bridge=none), and `network: host` means the engine's
#   namespace (loopback only). envctl's containers need nothing more: the demo's container runs
#   with `network: none`, downloads are done by envctl on the host, and no test publishes a port.
# - The forky root is not entered with chroot: only its /usr (and ld.so.cache) is mounted over
#   the machine's inside the private mount namespace. So the engine sees every other path as the
#   tests do (bind-mount sources under /tmp, /var/lib/envctl-test, simulated /dev nodes under a
#   host root) with nothing to bind in. Debian 12 and forky are both merged-/usr (/bin, /lib,
#   /sbin are links into /usr), so the swap takes every binary and library with it.
# - /run is a fresh tmpfs in the namespace: dockerd must not find the machine's
#   /run/containerd/containerd.sock (Debian's docker.io 20.10 runs a system containerd) and
#   starts a containerd of its own instead. Only $RUN_DIR is carried over, for the socket.
# - The data root is a mount of its own (bound onto itself): containerd's snapshotter reads the
#   mount table for it; without one dockerd fails with
#   `unknown service containerd.services.leases.v1.Leases`.
set -euo pipefail

SUITE=${ENVCTL_CONTAINERD_SUITE:-forky}
MIRROR=${ENVCTL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
STATE=/var/lib/envctl-test-containerd      # rootfs/ (the forky root), data/ (the engine's data root)
RUN_DIR=/run/envctl-test-containerd        # docker.sock, engine.pid
SOCKET=$RUN_DIR/docker.sock
LOG=/var/log/envctl-test-containerd.log
ROOTFS=$STATE/rootfs
DATA=$STATE/data

say() { echo "ensure-containerd-engine: $*" >&2; }
die() { say "$*"; exit 1; }
engine() { docker -H "unix://$SOCKET" "$@"; }
answers() { [ -S "$SOCKET" ] && engine version --format '{{.Server.Version}}' >/dev/null 2>&1; }
snapshotter() { engine info --format '{{json .DriverStatus}}' 2>/dev/null | grep -q 'io.containerd.snapshotter.v1'; }
engine_pid() {  # our dockerd (unshare execs it in place), when it still runs
  local pid
  pid=$(cat "$RUN_DIR/engine.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)")" = dockerd ] && echo "$pid"
}

stop() {
  local pid
  if pid=$(engine_pid); then
    # On SIGTERM dockerd stops its containers and unmounts their layers; the namespaces go
    # when the last process in them exits.
    kill -TERM "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "engine $pid did not stop in 30 s; killing its process group"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
    fi
  fi
  rm -f "$RUN_DIR/engine.pid" "$SOCKET"
  say "stopped"
}

if [ "${1:-}" = "--stop" ]; then stop; exit 0; fi
[ "$(id -u)" = 0 ] || die "needs root (namespaces, mounts, its own dockerd)"
command -v docker >/dev/null || die "no docker CLI; run tests/ensure-engine.sh first"

if answers && snapshotter; then
  say "Docker $(engine version --format '{{.Server.Version}}') with the containerd image store answers at $SOCKET"
  exit 0
fi

# --- the forky root, once ---------------------------------------------------------------------
if [ ! -x "$ROOTFS/usr/sbin/dockerd" ] || [ ! -e "$ROOTFS/.envctl-complete" ]; then
  if ! command -v debootstrap >/dev/null; then
    command -v apt-get >/dev/null || die "debootstrap is missing and this is not Debian/Ubuntu"
    say "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  # Debian 12's debootstrap has no script named after newer suites; every Debian suite since
  # squeeze uses the `sid` script (its other names are links to it).
  script=/usr/share/debootstrap/scripts/$SUITE
  [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
  [ -e "$script" ] || die "debootstrap has no script for $SUITE nor sid"
  mkdir -p "$STATE"
  partial=$STATE/rootfs.partial
  rm -rf "$partial"
  say "debootstrapping Debian $SUITE with docker.io into $ROOTFS (once; about a minute)"
  if ! debootstrap --variant=minbase --include=docker.io,ca-certificates "$SUITE" "$partial" "$MIRROR" "$script" \
      >"$STATE/debootstrap.log" 2>&1; then
    tail -n 20 "$STATE/debootstrap.log" >&2
    die "debootstrap of $SUITE failed (log: $STATE/debootstrap.log)"
  fi
  touch "$partial/.envctl-complete"   # a root without it is never taken for a whole one
  rm -rf "$ROOTFS"
  mv "$partial" "$ROOTFS"
fi

# --- start it in its own mount and network namespaces -------------------------------------------
if pid=$(engine_pid); then
  say "an engine process ($pid) runs but does not answer as expected; restarting it"
  stop
fi
mkdir -p "$RUN_DIR" "$DATA" "$STATE/run-out"
rm -f "$SOCKET"
cat >"$STATE/daemon.json" <<'EOF'
{"features": {"containerd-snapshotter": true}, "bridge": "none", "iptables": false, "ip6tables": false}
EOF

# Runs inside the new namespaces, with the machine's tools until the last line swaps /usr.
inner=$(cat <<'EOF'
set -e
ip link set lo up
mount --bind "$DATA" "$DATA"                      # a mount of its own for containerd
mount --bind "$RUN_DIR" "$STATE/run-out"          # keep the socket directory before /run is replaced
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p "$RUN_DIR"
mount --bind "$STATE/run-out" "$RUN_DIR"
mount --bind "$ROOTFS/usr" /usr
mount --bind "$ROOTFS/etc/ld.so.cache" /etc/ld.so.cache
exec /usr/sbin/dockerd --config-file "$STATE/daemon.json" --data-root "$DATA" \
  --exec-root /run/docker --pidfile /run/docker.pid -H "unix://$SOCKET" \
  --cgroup-parent /envctl-test-containerd --shutdown-timeout 5
EOF
)
had_docker0=$(ip link show docker0 >/dev/null 2>&1 && echo yes || echo no)
machine_engine=$(docker -H unix:///var/run/docker.sock version --format '{{.Server.Version}}' 2>/dev/null || true)
say "starting Docker from $ROOTFS (log: $LOG)"
: >"$LOG"
DATA=$DATA RUN_DIR=$RUN_DIR STATE=$STATE ROOTFS=$ROOTFS SOCKET=$SOCKET \
  setsid unshare --mount --net --propagation private -- bash -c "$inner" </dev/null >>"$LOG" 2>&1 &
echo $! >"$RUN_DIR/engine.pid"

for _ in $(seq 1 60); do
  answers && break
  kill -0 "$(cat "$RUN_DIR/engine.pid")" 2>/dev/null || break
  sleep 1
done
if ! answers; then
  say "the engine did not answer at $SOCKET; its log ($LOG), first and last lines:"
  if [ "$(wc -l <"$LOG")" -le 45 ]; then cat "$LOG" >&2; else head -n 5 "$LOG" >&2; echo "..." >&2; tail -n 40 "$LOG" >&2; fi
  stop
  exit 1
fi
if ! snapshotter; then
  say "the engine answers but does not use the containerd image store; docker info says:"
  engine info 2>&1 | sed -n '/Storage Driver/,/Logging Driver/p' >&2
  exit 1
fi
# The machine's own network must be untouched (a dockerd with "bridge": "none" that could see
# the machine's docker0 would delete it).
if [ "$had_docker0" = yes ] && ! ip link show docker0 >/dev/null 2>&1; then
  stop
  die "the machine's docker0 is gone after the start: the engine is not in a network namespace of its own"
fi
if [ -n "$machine_engine" ] && ! docker -H unix:///var/run/docker.sock version >/dev/null 2>&1; then
  stop
  die "the machine's engine (Docker $machine_engine) stopped answering after the start"
fi
say "Docker $(engine version --format '{{.Server.Version}}') with the containerd image store answers at $SOCKET"
