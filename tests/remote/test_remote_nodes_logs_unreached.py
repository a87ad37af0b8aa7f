"""logs --nodes with a node that cannot be reached (after a run, that host down or its sshd
gone): the other nodes' logs are still printed, in rank order, and then the unreachable node
is named with its own error and exit code (7: cannot connect), as a missing log is (exit 4,
the others printed). It used to stop at opening that node and print nothing. With the first
node named unreachable the run is chosen on the next one; --runs is listed from it; with no
node reachable the first one's error."""

from __future__ import annotations

import yaml
from test_remote_nodes import _up_both, tarball  # noqa: F401 (tarball: a fixture)


def test_logs_of_the_nodes_reached_are_printed(world, lab, tarball):  # noqa: F811
    _up_both(world, tarball)
    ran = world.run("exec", "show", "--nodes", "lab1,lab2")
    assert ran.returncode == 0, ran.stderr
    run_id = next(w for w in ran.stderr.split() if w.startswith("show-")).rstrip(":")
    down = "ssh://root@127.0.0.1:1"  # refused at once: the host is down for envctl
    data = {"defaults": {"data_dir": world.data_dir(), "fetch": "push"}, "hosts": {"lab1": {}, "lab2": {"ssh": down}}}
    world.inventory.write_text(yaml.safe_dump(data))

    for nodes in ("lab1,lab2", "lab2,lab1"):
        done = world.run("logs", "--nodes", nodes)
        assert done.returncode == 7, (nodes, done.stderr)
        assert "[0 lab1] rank=0 of 2" in done.stdout and "[1 lab2]" not in done.stdout, (nodes, done.stdout)
        assert "127.0.0.1" in done.stderr and f"its log of run {run_id} could not be read" in done.stderr, done.stderr
        assert "the other nodes' logs are above" in done.stderr and "Traceback" not in done.stderr, done.stderr
    listed = world.run("logs", "--nodes", "lab2,lab1", "--runs")
    assert listed.returncode == 0 and run_id in listed.stdout, listed.stderr

    data["hosts"]["lab1"] = {"ssh": down}
    world.inventory.write_text(yaml.safe_dump(data))
    done = world.run("logs", "--nodes", "lab1,lab2")
    assert done.returncode == 7 and done.stdout == "" and "cannot connect" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
