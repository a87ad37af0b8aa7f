"""A setup step's marker is written by the wrapper that runs the step (envctl/markers.py
CLAIM_WRAPPER), in the step's own exec: `up` runs no exec of its own for it (three Engine API
requests less, each a round trip to an SSH host; tests/remote/test_remote_round_trips.py counts
them). A marker the wrapper cannot write still stops `up`, saying so, and the next `up` runs the
step again rather than skipping it."""

import pytest

from support import IMAGE

pytestmark = pytest.mark.both_engines

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
setup:
  - name: block the markers
    # Succeeds, and leaves a file where the markers' directory goes.
    run: "echo ran >> /tmp/runs; rm -rf /var/lib/envctl/setup; touch /var/lib/envctl/setup"
"""


def test_a_marker_that_cannot_be_written_stops_up_and_the_step_runs_again(make_env, tarballs):
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    first = env.run("up", str(env.manifest))
    assert first.returncode == 5, first.stderr  # EXIT_HOST_NOT_READY
    assert "setup step 'block the markers' ran, but its marker /var/lib/envctl/setup/000-" in first.stderr
    assert "could not be written in the container" in first.stderr
    assert "| envctl-setup-marker" not in first.stderr  # the wrapper's word to envctl is not shown as the step's output
    assert env.inside("ls -A /var/lib/envctl/claims") == (0, "")  # the claim was let go
    assert env.inside("rm /var/lib/envctl/setup")[0] == 0
    again = env.run("up", str(env.manifest))
    assert again.returncode == 5, again.stderr
    assert env.inside("cat /tmp/runs") == (0, "ran\nran\n")  # no marker: the step ran again


LINKED_BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
setup:
  - name: point the markers at proc
    # Succeeds, and leaves the markers' directory a link to one where no file can be made: the
    # wrapper's mkdir -p succeeds and only the marker's own write fails.
    run: "echo ran >> /tmp/runs; rm -rf /var/lib/envctl/setup; ln -s /proc /var/lib/envctl/setup"
"""


def test_a_marker_whose_directory_is_there_but_takes_no_file_stops_up_with_the_wrappers_word(make_env, tarballs):
    # `: > FILE` failing ends a POSIX sh outright (a redirection error on a special built-in):
    # the wrapper then exited 2 without its word, up called the step failed (exit code 2) and
    # the claim was left behind.
    env = make_env("cpu")
    env.write(LINKED_BODY.format(image=IMAGE, tarball=tarballs.plain))
    first = env.run("up", str(env.manifest))
    assert first.returncode == 5, first.stderr
    assert "setup step 'point the markers at proc' ran, but its marker /var/lib/envctl/setup/000-" in first.stderr
    assert "failed with exit code" not in first.stderr
    assert env.inside("ls -A /var/lib/envctl/claims") == (0, "")  # the claim was let go


@pytest.mark.parametrize("earlier", [1, 2, 3], ids=["the wrapper before the exit word", "71f645e's wrapper",
                                                    "the wrapper before it"])
def test_a_step_an_earlier_envctl_started_is_still_read_as_a_setup_step(make_env, tarballs, earlier):
    # The claim wrapper's text changed three times (the marker written by it, then with `true`,
    # then the exit code said last): a step started by an earlier wrapper, still running, was
    # listed as an exec of `sh -c ...`.
    import json

    from envctl.markers import CLAIM_DIR, CLAIM_WRAPPERS, MARKER_DIR

    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain).split("setup:")[0])
    assert env.run("up", str(env.manifest)).returncode == 0
    env.get().exec_run(["sh", "-c", CLAIM_WRAPPERS[earlier], f"{CLAIM_DIR}/000-{'ab' * 32}", f"{MARKER_DIR}/000-{'ab' * 32}",
                        "long one", "sleep", "60"], detach=True)
    for _ in range(100):  # the exec has started when its claim is there
        if env.inside(f"ls {CLAIM_DIR}")[1].strip():
            break
    status = env.run("status", "--json")
    assert status.returncode == 0, status.stderr
    runs = [run for entry in json.loads(status.stdout) if entry["name"] == env.container for run in entry["runs"]]
    assert [(r["kind"], r["name"]) for r in runs] == [("setup", "long one")], runs
