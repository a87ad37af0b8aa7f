#!/usr/bin/env bash
# Make sure the remote-host tests can build their SSH lab (tests/sshlab.py): a real OpenSSH
# server and client, iproute2 (ip netns, veth, bridge, tc), util-linux (unshare, nsenter) and
# iptables (the NFQUEUE delay used where the kernel has no netem). On Debian/Ubuntu as root:
# install what is missing. Then check the kernel features the lab needs and say which is
# missing, instead of letting a test fail later with a cryptic message.
set -euo pipefail

say() { echo "ensure-ssh: $*" >&2; }

policy=/usr/sbin/policy-rc.d
ours=          # set when this script wrote the policy-rc.d below, which it then removes
probe="envctl-ssh-probe-$$"
cleanup() {
  ip netns del "$probe" 2>/dev/null || true
  if [ -n "$ours" ]; then rm -f "$policy"; fi
}
trap cleanup EXIT

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 || missing+=(iproute2)
command -v nsenter >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing ${missing[*]} and cannot install them (not root on Debian/Ubuntu)"
    exit 1
  fi
  say "installing ${missing[*]}"
  # The package's maintainer scripts would start a system-wide sshd on port 22: the lab runs its
  # own servers in namespaces and wants none. A policy-rc.d answering 101 forbids the start;
  # an existing one (Docker images ship one) is left as it is.
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    ours=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The lab itself needs root: namespaces, veth pairs, mounts and a dockerd per host.
if [ "$(id -u)" != 0 ]; then
  say "the SSH lab needs root (network and mount namespaces); run the tests as root"
  exit 1
fi

# Kernel features, checked in a scratch network namespace so nothing on the machine changes.
if ! ip netns add "$probe" 2>/dev/null; then
  say "cannot create a network namespace (ip netns add): the kernel lacks CONFIG_NET_NS or we are confined"
  exit 1
fi
if ! ip -n "$probe" link add probe0 type veth peer name probe1 2>/dev/null; then
  say "cannot create a veth pair: the kernel lacks CONFIG_VETH"
  exit 1
fi
if ! ip -n "$probe" link add probebr type bridge 2>/dev/null; then
  say "cannot create a bridge: the kernel lacks CONFIG_BRIDGE"
  exit 1
fi
if ! unshare --mount --propagation private true 2>/dev/null; then
  say "cannot create a mount namespace (unshare --mount)"
  exit 1
fi
# Partitions and delays filter the bridged packets of the lab's switch with iptables, which
# needs br_netfilter (built in, or a module that Docker usually loads already).
[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || modprobe br_netfilter 2>/dev/null || true
if [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
  say "br_netfilter is not loaded (modprobe br_netfilter): the lab cannot partition hosts or add delays"
  exit 1
fi
# Delays: netem when the kernel has it, else packets held back through NFQUEUE.
ip -n "$probe" link set lo up
if tc -n "$probe" qdisc add dev lo root netem delay 1ms 2>/dev/null; then
  say "delays: netem"
elif ip netns exec "$probe" iptables -A OUTPUT -o lo -j NFQUEUE --queue-num 0 --queue-bypass 2>/dev/null; then
  say "delays: this kernel has no sch_netem; the lab delays packets through NFQUEUE instead"
else
  say "neither netem (CONFIG_NET_SCH_NETEM) nor NFQUEUE (CONFIG_NETFILTER_NETLINK_QUEUE) works: the lab cannot add delays"
  exit 1
fi
say "$(ssh -V 2>&1) and iproute2 ready"
