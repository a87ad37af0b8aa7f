"""How a run across two SSH lab hosts ends when something goes wrong mid-run (`exec ENTRYPOINT
--nodes lab1,lab2`): a node's process killed (as the OOM killer or an operator would), Ctrl-C
on envctl, a node whose process ignores SIGINT and SIGTERM, a node's SSH connection lost or its
server stopped. Each time the other node is stopped, the report names the node that failed
first with every node's last lines, the exit code is that node's, and no process of the run is
left in any container envctl can still reach (`docker top` through the host's own engine)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import docker
import pytest

from support import IMAGE
from testimages import save_image

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container: {{network: host}}
entrypoints:
  hold:
    run: echo one node
    nodes:
      launcher: none
      run: |
        sleep 3000 &
        echo "rank $ENVCTL_NODE_RANK pid $$ holds"
        sleep 3001
        echo "rank $ENVCTL_NODE_RANK was not stopped"
  polite:
    run: echo one node
    nodes:
      launcher: none
      run: |
        trap 'echo "rank $ENVCTL_NODE_RANK saves and stops"; exit 0' INT
        echo "rank $ENVCTL_NODE_RANK pid $$ holds"
        while :; do sleep 1; done
  stubborn:
    run: echo one node
    nodes:
      launcher: none
      run: |
        if [ "$ENVCTL_NODE_RANK" = 0 ]; then
          trap 'echo "rank 0 ignored SIGINT"' INT
          trap 'echo "rank 0 ignored SIGTERM"' TERM
        fi
        echo "rank $ENVCTL_NODE_RANK pid $$ holds"
        while :; do sleep 1; done
"""
# `sleep 3000 &`: a background child, as a launcher's workers are; it outlives its parent when
# that is killed, and must not outlive the run. `sleep 3001`: the foreground work.
LEFTOVERS = ("sleep 3000", "sleep 3001", "sleep 1")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote-nodes-failure") / "busybox.tar"
    save_image(docker.from_env(), None, path)
    return path


def _up_both(world, tarball):
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball))
    for host in ("lab1", "lab2"):
        up = world.run("up", str(manifest), "--host", host)
        assert up.returncode == 0, up.stderr


class Running:
    """`envctl exec ENTRYPOINT --nodes lab1,lab2` in its own process group (as a terminal's
    foreground job is), its output read as it comes."""

    def __init__(self, world, entrypoint: str):
        self.process = subprocess.Popen([sys.executable, "-m", "envctl", "exec", entrypoint, "--nodes", "lab1,lab2"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=world.environ(),
                                        start_new_session=True)
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.stderr = ""
        self.readers = [threading.Thread(target=self._read, daemon=True),
                        threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read(self):
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def _read_stderr(self):
        self.stderr = self.process.stderr.read()

    def pid_of(self, rank: int, host: str, timeout: float = 120) -> str:
        """The PID (in its container) of the node's entrypoint shell, once it says it holds."""
        pattern = re.compile(rf"^\[{rank} {host}\] rank {rank} pid (\d+) holds$")
        with self.changed:
            found = self.changed.wait_for(lambda: any(pattern.match(line) for line in self.lines)
                                          or self.process.poll() is not None, timeout=timeout)
            matches = [pattern.match(line) for line in self.lines if pattern.match(line)]
        assert found and matches, f"{host} never started; stdout so far: {self.lines}; stderr: {self.stderr}"
        return matches[0].group(1)

    def finish(self, timeout: float = 180) -> tuple[int, str, str]:
        code = self.process.wait(timeout=timeout)
        for reader in self.readers:  # they end at the pipes' end
            reader.join(timeout=60)
        return code, "\n".join(self.lines), self.stderr


def _left_running(lab, world, host: str) -> list[str]:
    """Processes of the run still in the host's container (`docker top`, the engine's own view)."""
    top = lab.docker(host, "top", world.container)
    assert top.returncode == 0, top.stderr
    return [line for line in top.stdout.splitlines() if any(what in line for what in LEFTOVERS)]


@pytest.mark.parametrize("victim, rank, signame, code", [("lab2", 1, "KILL", 137), ("lab1", 0, "TERM", 143)])
def test_a_node_whose_process_is_killed_stops_the_other(world, lab, tarball, victim, rank, signame, code):
    """The launcher's process killed in its container (SIGKILL as the OOM killer sends it, or
    SIGTERM); once on the worker, once on the master."""
    _up_both(world, tarball)
    run = Running(world, "hold")
    pid = run.pid_of(rank, victim)
    run.pid_of(1 - rank, "lab2" if victim == "lab1" else "lab1")
    killed = lab.docker(victim, "exec", world.container, "kill", f"-{signame}", pid)
    assert killed.returncode == 0, killed.stderr
    returned, out, err = run.finish()

    other, other_rank = ("lab1", 0) if victim == "lab2" else ("lab2", 1)
    assert returned == code, err
    assert f"node {rank} ({victim}) failed first: exit code {code}; envctl stopped the others" in err, err
    assert re.search(rf"^\[{other_rank} {other}\] stopped by envctl \(SIG(INT|TERM|KILL)\), exit code \d+", err, re.M), err
    assert re.search(rf"^\[{rank} {victim}\] exit code {code};", err, re.M), err
    assert f"    rank {rank} pid {pid} holds" in err and f"    rank {other_rank} pid " in err  # each node's last lines
    assert "was not stopped" not in out, out
    for host in ("lab1", "lab2"):  # neither the survivor's nor the killed launcher's children remain
        assert _left_running(lab, world, host) == [], host


def test_a_node_whose_container_is_killed_stops_the_other(world, lab, tarball):
    """lab2's whole container killed under the run (`docker kill`, as an operator or a host
    agent would): its engine still answers, so this is that node failing with its exec's code,
    not a lost connection; lab1 is stopped."""
    _up_both(world, tarball)
    run = Running(world, "hold")
    run.pid_of(0, "lab1")
    run.pid_of(1, "lab2")
    killed = lab.docker("lab2", "kill", world.container)
    assert killed.returncode == 0, killed.stderr
    returned, out, err = run.finish()

    assert returned != 0, err
    assert re.search(rf"^node 1 \(lab2\) failed first: exit code {returned}; envctl stopped the others$", err, re.M), err
    assert re.search(r"^\[0 lab1\] stopped by envctl \(SIG(INT|TERM|KILL)\), exit code \d+", err, re.M), err
    assert "could not stop" not in err and "Traceback" not in err, err
    assert _left_running(lab, world, "lab1") == []


@pytest.mark.parametrize("entrypoint", ["hold", "polite"])
def test_ctrl_c_stops_every_node(world, lab, tarball, entrypoint):
    """SIGINT to envctl's process group, as a terminal sends it on Ctrl-C. `polite` nodes save
    and stop on SIGINT: what they print then is still shown and kept in each node's log."""
    _up_both(world, tarball)
    run = Running(world, entrypoint)
    run.pid_of(0, "lab1")
    run.pid_of(1, "lab2")
    os.killpg(run.process.pid, signal.SIGINT)
    returned, out, err = run.finish()

    assert returned == 130, err
    assert "interrupted: envctl stopped every node" in err, err
    for rank, host in ((0, "lab1"), (1, "lab2")):
        assert re.search(rf"^\[{rank} {host}\] stopped by envctl \(SIG(INT|TERM|KILL)\), exit code \d+", err, re.M), err
        assert _left_running(lab, world, host) == [], host
        if entrypoint == "polite":
            assert f"[{rank} {host}] rank {rank} saves and stops" in out, out
            log = re.search(rf"^\[{rank} {host}\] .*; log (\S+) on {host}$", err, re.M).group(1)
            assert f"rank {rank} saves and stops" in world.remote(host, log).read_text()
    assert "Traceback" not in err and "was not stopped" not in out


def test_a_node_ignoring_sigint_and_sigterm_gets_sigkill(world, lab, tarball):
    """The grace sequence: rank 0 traps SIGINT and SIGTERM (as a launcher saving a checkpoint
    might, and never ending); it sees both, then SIGKILL ends it."""
    _up_both(world, tarball)
    run = Running(world, "stubborn")
    run.pid_of(0, "lab1")
    pid = run.pid_of(1, "lab2")
    assert lab.docker("lab2", "exec", world.container, "kill", "-KILL", pid).returncode == 0
    returned, out, err = run.finish()

    assert returned == 137, err
    assert "node 1 (lab2) failed first: exit code 137" in err, err
    assert "[0 lab1] rank 0 ignored SIGINT" in out and "[0 lab1] rank 0 ignored SIGTERM" in out, out
    assert out.index("rank 0 ignored SIGINT") < out.index("rank 0 ignored SIGTERM"), out
    assert re.search(r"^\[0 lab1\] stopped by envctl \(SIGKILL\), exit code 137", err, re.M), err
    for host in ("lab1", "lab2"):
        assert _left_running(lab, world, host) == [], host


@pytest.mark.parametrize("fault", ["drop_connections", "stop", "partition"])
def test_a_lost_connection_counts_as_that_node_failing(world, lab, tarball, fault):
    """lab2's SSH sessions cut (its sshd still accepts new ones), its sshd stopped (connections
    refused), or its link partitioned (packets dropped: the SSH keepalive, the lab config's
    3 x 3 s, ends the connection): lab2 is the node that failed, lab1 is stopped and left with
    nothing running."""
    _up_both(world, tarball)
    run = Running(world, "hold")
    run.pid_of(0, "lab1")
    run.pid_of(1, "lab2")
    getattr(lab, fault)("lab2")
    returned, out, err = run.finish()

    assert returned != 0, err
    assert re.search(r"^node 1 \(lab2\) failed first: lost the connection to lab2", err, re.M), err
    assert re.search(r"^\[0 lab1\] stopped by envctl \(SIG(INT|TERM|KILL)\), exit code \d+", err, re.M), err
    assert "Traceback" not in err
    assert _left_running(lab, world, "lab1") == []
    if fault == "drop_connections":  # lab2 is still reachable: envctl stopped its processes there too
        assert _left_running(lab, world, "lab2") == [], err
    else:
        assert "could not stop" in err and "lab2" in err, err
