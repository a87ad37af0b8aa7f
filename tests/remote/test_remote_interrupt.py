"""Ctrl-C stops `up --host` (envctl/interrupts.py): the terminal's SIGINT reaches envctl and its
ssh commands (one process group); envctl exits 130 and starts nothing after it, on any thread.
Before, each host's work went on on its pool's thread: the pushes took their ssh commands' end
for a dropped connection and sent again, then the image was loaded, the container created and
the setup run, and only then did envctl exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from engines import CLASSIC, connect
from testimages import save_image

REF = "envctl-it/interrupted:1"


def _pushing(trace) -> bool:
    return trace.exists() and any("sha256_in()" in line for line in trace.read_text().splitlines())


@pytest.mark.parametrize("mib, whom", [(24, "group"), (72, "group"), (72, "envctl")],
                         ids=["one stream, Ctrl-C", "segments, Ctrl-C", "segments, SIGINT to envctl alone"])
def test_ctrl_c_during_the_pushes_ends_up_and_nothing_more_is_done(world, tmp_path, mib, whom):
    """72 MiB to a far host goes in four segments over connections of their own
    (envctl/remote/segments.py). "group": what the terminal sends on Ctrl-C, to envctl and its
    ssh commands, which exit 255 as for a dropped connection. "envctl": SIGINT to envctl's
    process alone (`timeout -s INT`, a supervisor), its ssh commands streaming on."""
    tarball = tmp_path / "image.tar"
    save_image(connect(CLASSIC).client, {"etc/interrupted": b"1\n"}, tarball, REF)
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(mib << 20))  # at a 200 ms round trip: seconds of pushing
    manifest = world.write(f"""\
device: {{kind: cpu}}
image: {{ref: {REF}, tarball: {{source: {tarball}}}}}
artifacts:
  weights: {{source: "{weights}", target: /models/weights.bin}}
setup:
  - name: size
    run: wc -c /models/weights.bin > /envctl/size.txt
""")
    world.lab.docker("lab1", "rmi", "-f", REF)
    world.cleanups.append(lambda: world.lab.docker("lab1", "rmi", "-f", REF))
    trace = tmp_path / "trace"
    world.lab.set_delay("lab1", 100)
    try:
        running = subprocess.Popen([sys.executable, "-m", "envctl", "up", str(manifest), "--host", "lab1"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                   env=world.environ(ENVCTL_SSH_TRACE=str(trace)))
        while running.poll() is None and not _pushing(trace):
            time.sleep(0.05)
        assert running.poll() is None, running.communicate()
        time.sleep(0.3)  # the pushes under way
        if whom == "group":
            os.killpg(running.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C: envctl and its ssh commands
        else:
            os.kill(running.pid, signal.SIGINT)
        started = trace.read_text().splitlines()
        out, err = running.communicate(timeout=120)
        left = subprocess.run(["pgrep", "-a", "-s", str(running.pid)], capture_output=True, text=True).stdout.splitlines()
        time.sleep(2)  # anything still going on would act now
    finally:
        world.lab.clear_delay("lab1")
    assert running.returncode == 130, err
    assert "Traceback" not in err, err
    # Nothing started after Ctrl-C: no push sent again (before: the artifact's push took its ssh
    # command's end for a dropped connection, started again and finished, "sent on lab1"), no
    # step after it, no engine request.
    assert trace.read_text().splitlines() == started
    assert "sent on lab1" not in err, err
    assert left == [], "\n".join(left)  # no ssh of its session streams on
    assert world.containers("lab1") == []
    if whom == "group":  # its load's session ended with it (to envctl alone: a load that had its bytes may end)
        assert world.lab.docker("lab1", "image", "inspect", REF).returncode != 0
    # The run after it resumes from what had arrived and brings the environment up.
    done = world.run("up", str(manifest), "--host", "lab1")
    assert done.returncode == 0, done.stderr
    assert world.containers("lab1") == [f"{world.container} running"]
