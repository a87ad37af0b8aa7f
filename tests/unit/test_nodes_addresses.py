"""Master address and interfaces from `ip -j addr` / `ip -j route get` (envctl.nodes.addresses).
Inputs are in iproute2 6.1's JSON format (as `ip -j addr` prints on Debian 12; one test reads the
real command's output on this machine)."""

import json
import subprocess

import pytest

from envctl.nodes.addresses import AddressError, NodeNetwork, candidates, data_addresses, route_to_master


def link(name, *addresses):
    return {"ifindex": 1, "ifname": name, "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1500,
            "operstate": "UP", "addr_info": [
                {"family": "inet6" if ":" in a else "inet", "local": a.split("/")[0], "prefixlen": int(a.split("/")[1]),
                 "scope": "link" if a.startswith("fe80") else "host" if a.startswith("127.") else "global", "label": name}
                for a in addresses]}


LO = link("lo", "127.0.0.1/8")
# Lab servers: a management network (eth0), a data network (eth1), Docker's bridge with the same
# private subnet on every host, a veth and a user-defined bridge.
LAB1 = [LO, link("eth0", "10.213.1.11/24", "fe80::1/64"), link("docker0", "172.17.0.1/16"), link("veth12ab", "169.254.3.1/16")]
LAB2 = [LO, link("eth0", "10.213.1.12/24"), link("docker0", "172.17.0.1/16"), link("br-5f2c", "172.18.0.1/16")]
TWO_NETS1 = [LO, link("eth0", "10.213.1.11/24"), link("eth1", "10.213.2.1/24"), link("docker0", "172.17.0.1/16")]
TWO_NETS2 = [LO, link("eth0", "10.213.1.12/24"), link("eth1", "10.213.2.2/24")]
DATA_ONLY2 = [LO, link("eth0", "192.168.7.12/24"), link("eth1", "10.213.2.2/24")]


@pytest.mark.parametrize("nodes, expected", [
    ([("lab1", LAB1, None), ("lab2", LAB2, None)], ["10.213.1.11", "10.213.1.12"]),  # docker0's shared subnet skipped
    ([("lab1", TWO_NETS1, None), ("lab2", DATA_ONLY2, None)], ["10.213.2.1", "10.213.2.2"]),  # the one subnet both have
    ([("lab1", TWO_NETS1, "10.213.2.1"), ("lab2", TWO_NETS2, None)], ["10.213.2.1", "10.213.2.2"]),  # inventory chooses
    ([("lab1", TWO_NETS1, None), ("lab2", TWO_NETS2, "10.213.1.12"), ("lab3", LAB2, None)], None),  # see below
])
def test_master_and_node_addresses(nodes, expected):
    networks = [NodeNetwork(*n) for n in nodes]
    if expected is None:
        with pytest.raises(AddressError):  # two shared subnets with lab1/lab2, only eth0's with lab3: lab3 decides
            data_addresses(networks[:2])
        assert data_addresses([networks[0], networks[2]]) == ["10.213.1.11", "10.213.1.12"]
    else:
        assert data_addresses(networks) == expected


@pytest.mark.parametrize("nodes, words", [
    ([("lab1", TWO_NETS1, None), ("lab2", TWO_NETS2, None)],
     ["2 subnets every node shares", "10.213.1.11/24 on eth0", "10.213.2.1/24 on eth1", "data_addr", "--master-addr"]),
    ([("lab1", [LO, link("eth0", "10.0.0.1/24"), link("docker0", "172.17.0.1/16")]),
      ("lab2", [LO, link("eth0", "10.9.0.2/24"), link("docker0", "172.17.0.1/16")])],
     ["no subnet that every node has an address in", "lab2: 10.9.0.2/24 on eth0"]),
    ([("lab1", TWO_NETS1, "10.9.9.9"), ("lab2", TWO_NETS2, None)], ["lab1: 10.9.9.9 is not one of its addresses"]),
    ([("lab1", TWO_NETS1, "10.213.2.1"), ("lab2", LAB2, None)], ["lab2 has no address on the master's subnet 10.213.2.0/24"]),
])
def test_no_unambiguous_address_names_the_candidates_and_how_to_choose(nodes, words):
    with pytest.raises(AddressError) as caught:
        data_addresses([NodeNetwork(*(n + (None,))[:3]) for n in nodes])
    for word in words:
        assert word in str(caught.value)


def test_link_local_host_scope_and_ipv6_are_no_candidates():
    assert [str(c) for c in candidates(LAB1)] == ["10.213.1.11/24 on eth0"]


@pytest.mark.parametrize("route, own, expected", [
    ([{"dst": "10.213.2.1", "dev": "eth1", "prefsrc": "10.213.2.2", "flags": [], "uid": 0, "cache": []}], "10.213.2.2",
     ("eth1", "10.213.2.2")),
    ([{"dst": "10.213.2.1", "gateway": "10.213.1.1", "dev": "eth0", "prefsrc": "10.213.1.12", "flags": [], "uid": 0,
       "cache": []}], "10.213.2.2", ("eth0", "10.213.1.12")),
    # The master itself: `ip route get` of its own address is local through lo.
    ([{"type": "local", "dst": "10.213.2.1", "dev": "lo", "prefsrc": "10.213.2.1", "flags": [], "uid": 0,
       "cache": ["local"]}], "10.213.2.1", ("eth1", "10.213.2.1")),
])
def test_interface_towards_the_master(route, own, expected):
    found = route_to_master("lab", route, TWO_NETS1, own)
    assert (found.ifname, found.source) == expected


@pytest.mark.parametrize("route, words", [
    ([{"dst": "172.17.0.2", "dev": "docker0", "prefsrc": "172.17.0.1"}], "through docker0"),
    ([], "no route"),
])
def test_a_route_through_a_bridge_or_none_is_refused(route, words):
    with pytest.raises(AddressError, match=words):
        route_to_master("lab2", route, TWO_NETS2, "10.213.1.12")


def test_the_real_ip_command_output_is_read():
    real_addr = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout)
    names = {entry["ifname"] for entry in real_addr}
    assert all(c.ifname in names and c.ifname != "lo" for c in candidates(real_addr))
    local = json.loads(subprocess.run(["ip", "-j", "route", "get", "127.0.0.1"], capture_output=True, text=True, check=True).stdout)
    assert local[0]["type"] == "local" and local[0]["dev"] == "lo"  # the shape route_to_master treats as the master itself


@pytest.mark.parametrize("given, words", [
    ("172.17.0.1", ["lab1: 172.17.0.1 is on docker0, a bridge or loopback interface", "10.213.1.11/24 on eth0"]),
    ("127.0.0.1", ["lab1: 127.0.0.1 is on lo"]),
])
def test_a_given_address_on_a_bridge_or_loopback_is_refused(given, words):
    """gpustack #2275: a peer address on Docker's bridge subnet exists on every host and leads
    nowhere; --master-addr or data_addr naming it is refused, not taken."""
    with pytest.raises(AddressError) as caught:
        data_addresses([NodeNetwork("lab1", LAB1, given), NodeNetwork("lab2", LAB2, None)])
    for word in words:
        assert word in str(caught.value)


def test_a_node_with_two_addresses_on_the_masters_subnet_is_ambiguous():
    two = [LO, link("eth0", "10.213.1.12/24"), link("eth2", "10.213.1.22/24")]
    with pytest.raises(AddressError) as caught:
        data_addresses([NodeNetwork("lab1", LAB1, None), NodeNetwork("lab2", two, None)])
    assert "lab2 has 2 addresses on the master's subnet 10.213.1.0/24" in str(caught.value)
    assert "data_addr" in str(caught.value)
    assert data_addresses([NodeNetwork("lab1", LAB1, None), NodeNetwork("lab2", two, "10.213.1.22")]) == \
        ["10.213.1.11", "10.213.1.22"]


@pytest.mark.parametrize("given", [("fe80::1", "10.213.1.12"), ("fe80::1", None), (None, "fe80::1"), ("lab1", None)])
def test_a_given_address_that_is_not_ipv4_is_refused(given):
    """--master-addr or data_addr: an IPv6 address the host holds (eth0's link-local here) or a
    name. The IPv6 one was taken as the master address when the other node's was given, and the
    contract's own check then failed where plan --nodes does not expect it (an internal error)."""
    nodes = [NodeNetwork("lab1", LAB1, given[0]), NodeNetwork("lab2", LAB2 + [link("eth9", "fe80::1/64")], given[1])]
    with pytest.raises(AddressError, match="is not an IPv4 address"):
        data_addresses(nodes)
