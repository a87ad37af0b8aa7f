"""HCCL rank table v1.0 from hccn_tool output (envctl.nodes.ranktable)."""

import json

import pytest

from envctl.nodes.ranktable import RankTableError, parse_hccn_conf, parse_hccn_ip, rank_table, render


@pytest.mark.parametrize("output, ip", [
    ("ipaddr:192.168.100.101\nnetmask:255.255.255.0\n", "192.168.100.101"),  # the format of MindCluster's example
    ("ipaddr:10.0.0.2\r\nnetmask:255.255.255.0\r\n", "10.0.0.2"),
    ("ipaddr: 29.0.1.3\nnetmask: 255.255.0.0\n", "29.0.1.3"),
])
def test_device_ip_from_hccn_tool(output, ip):
    assert parse_hccn_ip(output, 0) == ip


@pytest.mark.parametrize("output, words", [
    ("", "printed no ipaddr: line (first line: 'nothing')"),
    ("netmask:255.255.255.0\n", "hccn_tool -i 3 -ip -s address IP netmask MASK"),
    ("ipaddr:10.xx.xx.10\nnetmask:255.255.255.0", "'10.xx.xx.10' is not an IP address"),
])
def test_hccn_tool_output_without_an_address(output, words):
    with pytest.raises(RankTableError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_hccn_ip(output, 3)


def test_hccn_conf_fallback():
    text = "address_0=192.168.100.101\nnetmask_0=255.255.255.0\naddress_1=192.168.101.101\n# comment\n"
    assert parse_hccn_conf(text) == {0: "192.168.100.101", 1: "192.168.101.101"}


def test_two_servers_as_hccl_tools_and_merge_hccl_write_them():
    table = rank_table([("10.0.0.1", [(4, "192.168.100.105"), (5, "192.168.101.105")]),
                        ("10.0.0.2", [(4, "192.168.100.115"), (5, "192.168.101.115")])])
    assert json.loads(render(table)) == {
        "version": "1.0", "server_count": "2", "status": "completed",
        "server_list": [
            {"server_id": "10.0.0.1", "host_nic_ip": "reserve", "device": [
                {"device_id": "4", "device_ip": "192.168.100.105", "rank_id": "0"},
                {"device_id": "5", "device_ip": "192.168.101.105", "rank_id": "1"}]},
            {"server_id": "10.0.0.2", "host_nic_ip": "reserve", "device": [
                {"device_id": "4", "device_ip": "192.168.100.115", "rank_id": "2"},
                {"device_id": "5", "device_ip": "192.168.101.115", "rank_id": "3"}]},
        ]}


def test_a_server_without_devices_is_refused():
    with pytest.raises(RankTableError, match="no devices"):
        rank_table([("10.0.0.1", [])])


@pytest.mark.parametrize("output, state", [
    ("link status: UP\n", "UP"),  # tests/fixtures/vendor/hccn_tool/link-g-up.txt
    ("link status: DOWN\n", "DOWN"),  # link-g-down.txt
    ("link status: UP\r\n", "UP"),
])
def test_link_state_from_hccn_tool(output, state):
    from envctl.nodes.ranktable import parse_hccn_link

    assert parse_hccn_link(output, 0) == state


@pytest.mark.parametrize("output", ["", "net health status: Init\n", "link status:\n"])
def test_hccn_tool_link_output_without_a_state(output):
    from envctl.nodes.ranktable import parse_hccn_link

    with pytest.raises(RankTableError, match="hccn_tool -i 5 -link -g printed no 'link status:' line"):
        parse_hccn_link(output, 5)
