"""exec --nodes refuses what it can refuse before a run exists: a --set the entrypoint does not
declare and --rank-table off Ascend (exit 2) come after the preflight but before the run is
announced and its directory written on every node. They used to come after: each refused exec
left `nodes/<run id>/` (nodes.json, hostfile, env) on both hosts, which `logs --nodes --runs`
then listed as runs. A run that starts after them is the only one listed."""

from __future__ import annotations

from test_remote_nodes import _up_both, tarball  # noqa: F401 (tarball: a fixture)


def _run_dirs(world, host):
    nodes = world.remote(host, f"{world.data_dir()}/workspaces/{world.container}/nodes")
    return sorted(p.name for p in nodes.iterdir()) if nodes.exists() else []


def test_a_refused_exec_leaves_no_run_behind(world, lab, tarball):  # noqa: F811
    _up_both(world, tarball)
    for extra, said in ((("--set", "lr=1e-4"), "entrypoint show has no parameter 'lr'"),
                        (("--rank-table",), "--rank-table is for Ascend NPUs")):
        done = world.run("exec", "show", "--nodes", "lab1,lab2", *extra)
        assert done.returncode == 2, done.stderr
        assert said in done.stderr and "\nrun show-" not in done.stderr and "[0 lab1]" not in done.stdout, done.stderr
        assert _run_dirs(world, "lab1") == [] and _run_dirs(world, "lab2") == [], done.stderr
    listed = world.run("logs", "--nodes", "lab1,lab2", "--runs")
    assert "show-" not in listed.stdout, listed.stdout

    ran = world.run("exec", "show", "--nodes", "lab1,lab2")
    assert ran.returncode == 0, ran.stderr
    assert len(_run_dirs(world, "lab1")) == 1 and _run_dirs(world, "lab1") == _run_dirs(world, "lab2")
    listed = world.run("logs", "--nodes", "lab1,lab2", "--runs")
    assert listed.stdout.count("show-") == 1 and _run_dirs(world, "lab1")[0] in listed.stdout, listed.stdout
