"""HCCL rank table v1.0 (hccl.json, RANK_TABLE_FILE) from each node's device IPs.

Device IPs come from `hccn_tool -i <physical id> -ip -g`, whose output is

    ipaddr:10.xx.xx.10
    netmask:255.255.255.0

(MindCluster's fault-collection guide, and the device-IP check in Ascend's HCCL troubleshooting:
"hccn_tool -i 0 -ip -g ... ipaddr:10.***.***.2 / netmask:255.255.***.0"), or, where hccn_tool
is absent, from `/etc/hccn.conf` lines `address_<id>=<ip>` — the two sources MindFormers'
hccl_tools.py reads (mindformers r1.1.0: mindformers/tools/hccl_tools.py). A device's link
state comes from `hccn_tool -i <id> -link -g`, one line `link status: UP` or `link status:
DOWN` (MindCluster's fault-collection guide; MindCluster npu-exporter's GetNPULinkStatus reads
the third word of that line; deployment checks grep 'link status: UP' before a multi-node run).

The table is written as hccl_tools.py writes one server and merge_hccl.py merges several:
`{"version": "1.0", "server_count": "<n>", "server_list": [{"server_id": <node IP>, "device":
[{"device_id": "<physical id>", "device_ip": ..., "rank_id": "<n>"}], "host_nic_ip": "reserve"}],
"status": "completed"}`, every value a string, rank ids numbered on in node order. Only the
rank-table start-up needs one (RANK_TABLE_FILE + RANK_ID/DEVICE_ID: older MindSpore, MindFormers
r1.0, ModelZoo 8p scripts); msrun and torch_npu's HCCL do not.
"""

from __future__ import annotations

import ipaddress
import json
import re


class RankTableError(ValueError):
    """A device without an IP, output in an unknown format, an invalid address."""


def parse_hccn_ip(output: str, device_id: int) -> str:
    """The device IP from `hccn_tool -i ID -ip -g` output. Raises RankTableError."""
    for line in output.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key.strip() == "ipaddr":
            return _checked(value.strip(), f"hccn_tool -i {device_id} -ip -g")
    shown = output.strip().splitlines()[0] if output.strip() else "nothing"
    raise RankTableError(f"hccn_tool -i {device_id} -ip -g printed no ipaddr: line (first line: {shown!r}); "
                         f"set the device IP with hccn_tool -i {device_id} -ip -s address IP netmask MASK")


def parse_hccn_link(output: str, device_id: int) -> str:
    """The link state word (UP, DOWN) from `hccn_tool -i ID -link -g`. Raises RankTableError."""
    for line in output.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key.strip().lower() == "link status" and value.strip():
            return value.strip().split()[0].upper()
    shown = output.strip().splitlines()[0] if output.strip() else "nothing"
    raise RankTableError(f"hccn_tool -i {device_id} -link -g printed no 'link status:' line (first line: {shown!r})")


def parse_hccn_conf(text: str) -> dict[int, str]:
    """`address_<id>=<ip>` lines of /etc/hccn.conf as {physical id: ip}."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^\s*address_(\d+)\s*=\s*(\S+)\s*$", line)
        if match:
            found[int(match.group(1))] = _checked(match.group(2), f"/etc/hccn.conf address_{match.group(1)}")
    return found


def _checked(ip: str, where: str) -> str:
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise RankTableError(f"{where}: {ip!r} is not an IP address") from None
    return ip


def rank_table(servers: list[tuple[str, list[tuple[int, str]]]]) -> dict:
    """The v1.0 table for [(server IP, [(physical device id, device ip), ...]), ...] in node
    order; each server's devices in the order given (the order of its visible cards)."""
    server_list, rank = [], 0
    for server_id, devices in servers:
        if not devices:
            raise RankTableError(f"server {server_id} has no devices")
        entries = []
        for device_id, device_ip in devices:
            entries.append({"device_id": str(device_id), "device_ip": device_ip, "rank_id": str(rank)})
            rank += 1
        server_list.append({"server_id": server_id, "device": entries, "host_nic_ip": "reserve"})
    return {"version": "1.0", "server_count": str(len(server_list)), "server_list": server_list, "status": "completed"}


def render(table: dict) -> str:
    return json.dumps(table, indent=4) + "\n"
