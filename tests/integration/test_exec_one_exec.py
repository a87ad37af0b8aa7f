"""`envctl exec` asks the engine for one exec per run: the entrypoint's. The PID file its wrapper
writes in the container (envctl/runs.py) is removed by the next run's wrapper once the run has
ended, not by a second `docker exec rm` after it; the files never pile up. Counted with the
engine's own events (exec_create), on both image stores."""

import signal
import time

import pytest

from support import IMAGE

pytestmark = pytest.mark.both_engines

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
entrypoints:
  hello:
    run: echo hello; exit 4
  names:
    run: printf '%s\\n' "d=$d" "f=$f"
    env: {{d: D1, f: F1}}
  nested:
    run: echo started; sleep 300; echo never
"""


def _exec_creates(env, since: int) -> list[str]:
    """The commands of the execs the engine created in the environment's container since `since`."""
    events = env.engine.api.events(since=since, until=int(time.time()), decode=True,
                                   filters={"container": env.container, "event": "exec_create"})
    return [e["Action"] for e in events]


def test_a_run_is_one_exec_and_pid_files_do_not_pile_up(make_env, tarballs):
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    assert env.run("up", str(env.manifest)).returncode == 0
    for _ in range(3):
        since = int(time.time()) + 1  # the events' times are whole seconds: nothing before the run in them
        time.sleep(since - time.time())
        done = env.run("exec", "hello", "--env", env.container)
        assert (done.returncode, done.stdout) == (4, "hello\n"), done.stderr
        time.sleep(1.1)  # `until` is whole seconds too
        creates = _exec_creates(env, since)
        assert len(creates) == 1, creates  # the entrypoint's; before: a second one, `rm -f` of its PID file
        code, listing = env.inside("ls /var/lib/envctl/exec")
        assert code == 0 and len(listing.split()) == 1, listing  # the last run's, until the next run starts


def test_the_wrapper_sets_no_variable_of_the_entrypoints(make_env, tarballs):
    # runs.WRAPPER removes ended runs' PID files before it becomes the entrypoint: its loop's
    # names stay in a subshell (before: an entrypoint's d and f were the wrapper's own values).
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    assert env.run("up", str(env.manifest)).returncode == 0
    done = env.run("exec", "names", "--env", env.container)
    assert (done.returncode, done.stdout) == (0, "d=D1\nf=F1\n"), done.stderr


def test_ctrl_c_reaches_the_runs_children_too(make_env, tarballs):
    # A shell line's shell waits on its command (sleep here, a training script in life): Ctrl-C
    # goes to the run's process group, as a terminal sends it, not to the shell alone, which died
    # of it and left its command running in the container (before: `sleep 300` still ran).
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain))
    assert env.run("up", str(env.manifest)).returncode == 0
    running = env.popen("exec", "nested", "--env", env.container)
    assert running.stdout.readline() == "started\n"
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 130 and out == "", err
    assert env.inside("ps -o args | grep -c '[s]leep 300'")[1].strip() == "0", "the run's command still runs"
