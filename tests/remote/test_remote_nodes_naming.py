"""--nodes names each host once: the order given is the ranks, so a host named twice (`lab1,lab2,lab1`,
a group and one of its members, a range and a member) is a usage error (exit 2) before any host
is opened, where `--hosts` keeps each once. Two inventory names for one host (an alias with the
same ssh destination) are found after opening: the same container of the same engine; the
preflight blocks (exit 5) naming both, where it used to stop on a master-address choice between
subnets 'every node shares'. The same names in order, a group alone and the reverse order run."""

from __future__ import annotations

import yaml
from test_remote_nodes import _up_both, tarball  # noqa: F401 (tarball: a fixture)


def _inventory(world):
    data = {"defaults": {"data_dir": world.data_dir(), "fetch": "push"},
            "hosts": {"lab1": {}, "lab2": {}, "lab1b": {"ssh": "lab1"}},
            "groups": {"pair": ["lab1", "lab2"]}}
    world.inventory.write_text(yaml.safe_dump(data))


def _nothing_ran(done):
    return "[0 " not in done.stdout and "[1 " not in done.stdout and "run show-" not in done.stderr


def test_a_host_named_twice_is_refused_and_one_host_under_two_names_is_blocked(world, lab, tarball):  # noqa: F811
    manifest = _up_both(world, tarball)
    _inventory(world)

    for nodes, twice in (("lab1,lab2,lab1", "lab1"), ("pair,lab1", "lab1"), ("lab2,pair", "lab2"),
                         ("lab[1-2],lab2", "lab2")):
        done = world.run("exec", "show", "--nodes", nodes)
        assert done.returncode == 2, (nodes, done.stderr)
        assert f"--nodes names {twice} more than once" in done.stderr and _nothing_ran(done), (nodes, done.stderr)
        assert "Traceback" not in done.stderr
    planned = world.run("plan", str(manifest), "--nodes", "lab1,lab2,lab1", "--entrypoint", "show")
    assert planned.returncode == 2 and "--nodes names lab1 more than once" in planned.stderr, planned.stderr

    for command in (("exec", "show"), ("doctor",)):
        done = world.run(*command, "--nodes", "lab1,lab1b")
        said = done.stdout + done.stderr  # doctor's table is its output; exec's goes to stderr
        assert done.returncode == 5, said
        assert "lab1b and lab1 are one host: the same container" in said, said
        assert "subnets every node shares" not in said and _nothing_ran(done), said

    for nodes, ranks in (("pair", ("lab1", "lab2")), ("lab2,lab1", ("lab2", "lab1"))):
        done = world.run("exec", "show", "--nodes", nodes)
        assert done.returncode == 0, done.stderr
        for rank, host in enumerate(ranks):
            assert f"[{rank} {host}] rank={rank} of 2" in done.stdout, done.stdout
