"""The host side of --rank-table (envctl.multinode.rank_table): its one probe per node, parsed,
and the refusal of a device kind that has no HCCL. The whole path runs on the SSH lab in
tests/remote/test_remote_nodes_rank_table.py."""

import subprocess
from pathlib import Path

import pytest

from envctl.errors import EnvctlError
from envctl.multinode import rank_table

RECORDED = Path(__file__).parents[1] / "fixtures" / "vendor" / "hccn_tool"


def test_the_probe_reports_each_query_with_its_exit_code(tmp_path):
    """The probe script run by sh, with a tool printing the recorded outputs and failing for
    device 7: every query's text and exit code come back apart."""
    tool = tmp_path / "hccn_tool"
    tool.write_text(f"#!/bin/sh\n[ \"$2\" = 7 ] && {{ echo no such device >&2; exit 2; }}\n"
                    f"[ \"$3\" = -ip ] && cat '{RECORDED}/ip-g.txt' || cat '{RECORDED}/link-g-up.txt'\n")
    tool.chmod(0o755)
    done = subprocess.run(["sh", "-c", rank_table._PROBE, "sh", f"/nonexistent/hccn_tool:{tool}", "3", "7"],
                          capture_output=True, text=True, check=True)
    used, outputs = rank_table._sections(done.stdout)
    assert used == str(tool)
    assert outputs[("ip", 3)] == (0, "ipaddr:29.1.112.213\nnetmask:255.255.0.0")
    assert outputs[("link", 3)] == (0, "link status: UP")
    assert outputs[("ip", 7)] == (2, "no such device") and outputs[("link", 7)][0] == 2


def test_no_hccn_tool_is_said_so():
    done = subprocess.run(["sh", "-c", rank_table._PROBE, "sh", "/nonexistent/a:/nonexistent/b", "0"],
                          capture_output=True, text=True, check=True)
    assert rank_table._sections(done.stdout) == (None, {})


@pytest.mark.parametrize("kind", ["cpu", "mlu", "cuda"])
def test_a_rank_table_is_for_ascend_only(kind):
    with pytest.raises(EnvctlError, match=f"--rank-table is for Ascend NPUs .*this environment's is {kind}") as raised:
        rank_table.build([], None, kind, print)
    assert raised.value.exit_code == 2
