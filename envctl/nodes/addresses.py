"""Choose the master address and each node's interface, from what `ip -j` prints on each node.

Inputs are the parsed JSON of iproute2's `ip -j addr` (a list of links, each with `ifname` and
`addr_info` entries `{"family": "inet", "local": IP, "prefixlen": N, "scope": ...}`) and of
`ip -j route get MASTER` (`[{"dst": ..., "dev": IFNAME, "prefsrc": IP, ...}]`; for an address of
the node itself `"type": "local"` and `"dev": "lo"`) — formats as iproute2 6.1 prints them.

Rules (the complaints in the research's §2 made deterministic: pytorch #76367 wrong
MASTER_ADDR, gpustack #2275 a peer on the docker bridge subnet, nccl-tests #15 wrong interface):

1. A node's data-plane address given in the inventory (`data_addr`) or by --master-addr wins.
2. Else the master's address is node 0's IPv4 address on a subnet every other node also has an
   address in, skipping lo, docker*, br-*, veth* (Docker's and bridges' private subnets, which
   look shared but lead nowhere); each other node's address is its own on that subnet.
3. Each node's interface and source address towards the master come from its route to it.
4. No candidate, or more than one: stop with the candidates and the way to choose.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

SKIPPED_PREFIXES = ("docker", "br-", "veth")
CHOOSE_HINT = "set data_addr: for the host in the inventory, or pass --master-addr"


class AddressError(ValueError):
    """No unambiguous address or interface; the message lists the candidates."""


@dataclass(frozen=True)
class Candidate:
    ifname: str
    interface: ipaddress.IPv4Interface  # address with its prefix

    def __str__(self) -> str:
        return f"{self.interface} on {self.ifname}"


def _skipped(ifname: str) -> bool:
    return ifname == "lo" or ifname.startswith(SKIPPED_PREFIXES)


def candidates(ip_addr: list[dict]) -> list[Candidate]:
    """A node's usable IPv4 addresses (global scope, not on a skipped interface), in link order."""
    found = []
    for link in ip_addr:
        name = link.get("ifname", "")
        if _skipped(name):
            continue
        for info in link.get("addr_info", []):
            if info.get("family") == "inet" and info.get("scope", "global") == "global" and "local" in info:
                found.append(Candidate(name, ipaddress.IPv4Interface(f"{info['local']}/{info.get('prefixlen', 32)}")))
    return found


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _all_addresses(ip_addr: list[dict]) -> set[str]:
    return {info["local"] for link in ip_addr for info in link.get("addr_info", []) if "local" in info}


def _holder(ip_addr: list[dict], address: str) -> str | None:
    """The interface holding `address`, if any."""
    for link in ip_addr:
        if any(info.get("local") == address for info in link.get("addr_info", [])):
            return link.get("ifname", "")
    return None


@dataclass(frozen=True)
class NodeNetwork:
    name: str
    ip_addr: list[dict]  # `ip -j addr` on the node (in its container's network namespace)
    given: str | None = None  # its data-plane address from the inventory (or --master-addr for node 0)


def data_addresses(nodes: list[NodeNetwork]) -> list[str]:
    """Every node's data-plane address, rank order; the first is the master address.
    Raises AddressError with the candidates when there is none or more than one."""
    if not nodes:
        raise AddressError("no nodes")
    for node in nodes:
        if node.given and not _is_ipv4(node.given):
            raise AddressError(f"{node.name}: {node.given} is not an IPv4 address; the master address and every node's "
                               "must be IPv4 literals (msrun and HCCL take no other)")
        if node.given and node.given not in _all_addresses(node.ip_addr):
            owned = ", ".join(str(c) for c in candidates(node.ip_addr)) or "none"
            raise AddressError(f"{node.name}: {node.given} is not one of its addresses ({owned}); the nodes run with "
                               "host networking, so the address must be the host's")
        holder = _holder(node.ip_addr, node.given) if node.given else None
        if holder is not None and _skipped(holder):
            owned = ", ".join(str(c) for c in candidates(node.ip_addr)) or "none"
            raise AddressError(f"{node.name}: {node.given} is on {holder}, a bridge or loopback interface that does "
                               f"not lead to the other hosts; give one of its addresses on a link between the hosts "
                               f"({owned})")
    master = nodes[0]
    if master.given:
        subnet_of = {str(c.interface.ip): c.interface.network for c in candidates(master.ip_addr)}
        network = subnet_of.get(master.given)
        chosen = [master.given]
    else:
        shared = [c for c in candidates(master.ip_addr)
                  if all(any(o.interface.ip in c.interface.network for o in candidates(other.ip_addr)) for other in nodes[1:])]
        if len(shared) != 1:
            listing = "; ".join(f"{n.name}: {', '.join(str(c) for c in candidates(n.ip_addr)) or 'none'}" for n in nodes)
            what = "no subnet that every node has an address in" if not shared else \
                f"{len(shared)} subnets every node shares ({', '.join(str(c) for c in shared)})"
            raise AddressError(f"cannot choose the master address of {master.name}: {what} (skipping lo, docker*, br-*, "
                               f"veth*). Addresses: {listing}. {CHOOSE_HINT[0].upper() + CHOOSE_HINT[1:]}")
        network = shared[0].interface.network
        chosen = [str(shared[0].interface.ip)]
    for node in nodes[1:]:
        if node.given:
            chosen.append(node.given)
            continue
        mine = [c for c in candidates(node.ip_addr) if network is not None and c.interface.ip in network]
        if len(mine) != 1:
            listing = ", ".join(str(c) for c in candidates(node.ip_addr)) or "none"
            how = "no address" if not mine else f"{len(mine)} addresses"
            raise AddressError(f"{node.name} has {how} on the master's subnet {network} (its addresses: {listing}); "
                               f"{CHOOSE_HINT}")
        chosen.append(str(mine[0].interface.ip))
    return chosen


@dataclass(frozen=True)
class Route:
    ifname: str  # the interface the node reaches the master through
    source: str  # its source address on that route (HCCL_IF_IP)


def route_to_master(name: str, route_get: list[dict], ip_addr: list[dict], own_address: str) -> Route:
    """A node's interface and source address towards the master, from `ip -j route get MASTER`.
    On the master itself the route is local (dev lo): its interface is the one holding the
    address. Raises AddressError when the route leaves through lo, docker*, br-* or veth*."""
    if not route_get or not isinstance(route_get[0], dict) or "dev" not in route_get[0]:
        raise AddressError(f"{name}: `ip -j route get` gave no route to the master ({route_get!r})")
    route = route_get[0]
    if route.get("type") == "local":
        holder = [c for c in candidates(ip_addr) if str(c.interface.ip) == own_address]
        if not holder:
            raise AddressError(f"{name}: the master address {own_address} is local but on no usable interface; {CHOOSE_HINT}")
        return Route(holder[0].ifname, own_address)
    if _skipped(route["dev"]):
        raise AddressError(f"{name} reaches the master through {route['dev']}, a bridge or loopback interface that "
                           f"does not lead to the other hosts; {CHOOSE_HINT}")
    return Route(route["dev"], route.get("prefsrc", own_address))
