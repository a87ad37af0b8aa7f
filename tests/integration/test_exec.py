"""`exec`, setup steps, `logs`, `down` and `doctor` on a real engine."""

import json
import signal

import pytest

from support import IMAGE
from terminal import in_terminal

pytestmark = pytest.mark.both_engines  # the lifecycle on the classic and the containerd image store

BODY = """\
device: {{kind: mlu, cards: 2}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container:
  workdir: /work
setup:
  - name: make the work directory
    run: mkdir -p /work && echo made >> /tmp/setup-runs
  - name: write a greeting
    run: echo {greeting} > /work/greeting && echo greeted >> /tmp/setup-runs
entrypoints:
  ok:
    run: cat /work/greeting
  three:
    run: echo about to fail; exit 3
  killed:
    run: kill -9 $$
  one-card:
    cards: 1
    run: echo "visible=$MLU_VISIBLE_DEVICES"
  two-cards:
    cards: 2
    run: echo "should not start"
  params:
    run: echo "steps=$MAX_STEPS lr=$LR args:"
    params: {{max_steps: 500, lr: "2e-2"}}
  argv:
    run: [echo, "from an argument list"]
  long:
    run: trap 'echo got INT > /tmp/interrupted; exit 130' INT; echo started; while true; do sleep 0.1; done
"""


def up(env, tarballs, greeting="hello"):
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain, greeting=greeting))
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr
    return done


def test_entrypoint_exit_codes_pass_through(make_env, tarballs):
    env = make_env("mlu", cards=2)
    up(env, tarballs)
    # With a single environment up, --env may be left out.
    others = [c.name for c in env.engine.containers.list(filters={"label": "io.envctl.manifest"}) if c.name != env.container]
    assert others == [], f"other envctl environments are running ({others}); this test needs to be alone"
    ok = env.run("exec", "ok")
    assert (ok.returncode, ok.stdout) == (0, "hello\n")
    three = env.run("exec", "three", "--env", env.container)
    assert (three.returncode, three.stdout) == (3, "about to fail\n")
    assert env.run("exec", "--env", env.container, "killed").returncode == 137


def test_params_set_and_extra_arguments(make_env, tarballs):
    env = make_env("mlu", cards=2)
    up(env, tarballs)
    default = env.run("exec", "--env", env.container, "params")
    assert default.stdout == "steps=500 lr=2e-2 args:\n"
    changed = env.run("exec", "--env", env.container, "params", "--set", "max_steps=10", "--", "a b", "c;d")
    assert changed.stdout == "steps=10 lr=2e-2 args: a b c;d\n", changed.stderr
    listed = env.run("exec", "--env", env.container, "argv", "--", "x")
    assert listed.stdout == "from an argument list x\n"
    typo = env.run("exec", "--env", env.container, "params", "--set", "max_step=1")
    assert typo.returncode == 2
    assert "entrypoint params has no parameter 'max_step' (did you mean 'max_steps'?); parameters: lr, max_steps" in typo.stderr
    unknown = env.run("exec", "--env", env.container, "trian")
    assert unknown.returncode == 2 and "has no entrypoint 'trian'" in unknown.stderr


def test_an_entrypoints_own_cards_narrow_visibility(make_env, tarballs):
    env = make_env("mlu", cards=2)
    up(env, tarballs)
    assert env.run("exec", "--env", env.container, "one-card").stdout == "visible=0\n"


def test_an_entrypoint_asking_for_more_cards_than_up_selected_is_refused(make_env, tarballs):
    env = make_env("mlu", cards=2)
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain, greeting="hello"))
    assert env.run("up", str(env.manifest), "--cards", "1").returncode == 0
    refused = env.run("exec", "--env", env.container, "two-cards")
    assert refused.returncode == 5 and refused.stdout == ""
    assert "entrypoint two-cards asks for cards 0,1 (numbered from 0 in the container), but the environment has 1" \
        in refused.stderr
    assert "--cards" in refused.stderr
    assert env.run("exec", "--env", env.container, "one-card").stdout == "visible=0\n"


def test_ctrl_c_reaches_the_process_in_the_container(make_env, tarballs):
    env = make_env("mlu", cards=2)
    up(env, tarballs)
    running = env.popen("exec", "long")
    assert running.stdout.readline() == "started\n"
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=30)
    assert running.returncode == 130, err
    assert env.inside("cat /tmp/interrupted")[1] == "got INT\n"
    assert env.inside("ps -o args | grep -c '[w]hile true'")[1].strip() == "0", "the entrypoint still runs"


def test_exec_needs_env_when_several_are_up(make_env, tarballs):
    first, second = make_env("mlu", cards=2), make_env("mlu", cards=2)
    up(first, tarballs)
    up(second, tarballs)
    done = first.run("exec", "ok")
    assert done.returncode == 4
    assert "environments are up" in done.stderr and first.container in done.stderr and second.container in done.stderr
    assert first.run("exec", "ok", "--env", second.container).returncode == 0


def test_output_is_logged_in_the_workspace_and_shown_by_logs(make_env, tarballs):
    env = make_env("mlu", cards=2)
    up(env, tarballs)
    env.run("exec", "three", "--env", env.container)
    logs = list((env.base / "workspaces" / env.container / "logs").glob("three-*.log"))
    assert len(logs) == 1 and logs[0].read_text() == "about to fail\n"
    shown = env.run("logs", env.container)
    assert shown.returncode == 0 and shown.stdout == "about to fail\n"


def test_runs_started_together_each_log_their_own_output(make_env, tarballs):
    """A script starting several runs of one entrypoint at once: each has a log of its own (the
    log's name was the second it started; two runs in that second appended to one file)."""
    env = make_env("mlu", cards=2)
    up(env, tarballs)
    runs = [env.popen("exec", "--env", env.container, "params", "--set", f"max_steps={n}") for n in (1, 2, 3)]
    said = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], said
    logs = sorted((env.base / "workspaces" / env.container / "logs").glob("params-*.log"))
    assert sorted(log.read_text() for log in logs) == [f"steps={n} lr=2e-2 args:\n" for n in (1, 2, 3)]
    for (stdout, stderr), n in zip(said, (1, 2, 3)):  # each run names its own log
        own = [log for log in logs if f"log: {log}" in stderr]
        assert len(own) == 1 and own[0].read_text() == stdout == f"steps={n} lr=2e-2 args:\n"


def test_setup_runs_once_and_reruns_from_the_first_changed_step(make_env, tarballs):
    env = make_env("mlu", cards=2)
    first = up(env, tarballs)
    assert "setup      2 step(s) ran, 0 unchanged" in first.stderr
    again = env.run("up", str(env.manifest))
    assert "setup      0 step(s) ran, 2 unchanged" in again.stderr
    changed = up(env, tarballs, greeting="bonjour")
    assert "setup      1 step(s) ran, 1 unchanged" in changed.stderr
    assert env.inside("cat /tmp/setup-runs")[1] == "made\ngreeted\ngreeted\n"
    assert env.run("exec", "--env", env.container, "ok").stdout == "bonjour\n"


def test_a_failing_setup_step_stops_up_and_the_next_up_resumes_there(make_env, tarballs):
    env = make_env("mlu", cards=2)
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain, greeting="hello")
              .replace("echo hello > /work/greeting", "test -f /tmp/allowed && echo hello > /work/greeting || { echo not yet; exit 7; }"))
    failed = env.run("up", str(env.manifest))
    assert failed.returncode == 5
    assert "error: setup step 2 'write a greeting' failed with exit code 7; last lines:" in failed.stderr
    assert "not yet" in failed.stderr
    assert "hint:  fix the cause and run `envctl up` again: it resumes at this step" in failed.stderr
    env.inside("touch /tmp/allowed")
    resumed = env.run("up", str(env.manifest))
    assert resumed.returncode == 0, resumed.stderr
    assert "setup      1 step(s) ran, 1 unchanged" in resumed.stderr
    assert env.inside("cat /tmp/setup-runs")[1] == "made\ngreeted\n"


def test_down_keeps_the_workspace_and_purge_deletes_it(make_env, tarballs, engine):
    env = make_env("mlu", cards=2)
    up(env, tarballs)
    env.run("exec", "ok", "--env", env.container)
    workspace = env.base / "workspaces" / env.container
    done = env.run("down", env.name)
    assert done.returncode == 0 and env.get() is None
    assert f"kept workspace {workspace}" in done.stderr and (workspace / "logs").is_dir()
    up(env, tarballs)
    purged = env.run("down", str(env.manifest), "--purge")  # the manifest's path names it too
    assert purged.returncode == 0 and not workspace.exists()
    missing = env.run("down", env.container)
    assert missing.returncode == 4 and f"no environment '{env.container}' is up" in missing.stderr


def test_doctor_reports_a_ready_host_and_a_missing_engine(make_env, tarballs, tmp_path):
    env = make_env("mlu", cards=2)
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain, greeting="x"))
    ready = env.run("doctor", str(env.manifest), "--json")
    checks = {c["name"]: c for c in json.loads(ready.stdout)}
    assert ready.returncode == 0, ready.stdout
    assert checks["docker engine"]["status"] == "ok" and checks["devices"]["status"] == "ok"
    assert checks["cnmon"]["detail"] == f"{env.root}/usr/bin/cnmon"
    unreachable = env.run("doctor", str(env.manifest), env=env.environ(DOCKER_HOST=f"unix://{tmp_path}/none.sock"))
    assert unreachable.returncode == 5
    assert unreachable.stdout.splitlines()[0].startswith("FAIL  docker engine")
    too_many = env.run("doctor", str(env.manifest), "--cards", "0,5")
    assert too_many.returncode == 5 and "card 5 does not exist" in too_many.stdout


def _in_terminal(env, *args, send: bytes = b"", timeout: float = 60) -> bytes:
    return in_terminal(args, env.environ(), send, timeout)


def test_an_interactive_entrypoint_gets_a_terminal(make_env, tarballs):
    env = make_env("mlu", cards=2)
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain, greeting="hi") + """\
  chat:
    interactive: true
    run: tty; read line; echo "you said $line"
""")
    assert env.run("up", str(env.manifest)).returncode == 0
    output = _in_terminal(env, "exec", "chat", "--env", env.container, send=b"hello\r")
    assert b"/dev/pts/" in output and b"you said hello" in output
    piped = env.run("exec", "chat", "--env", env.container, input="")
    assert "not a tty" in piped.stdout


def test_shell_opens_a_shell_in_the_container(make_env, tarballs):
    env = make_env("mlu", cards=2)
    up(env, tarballs)
    output = _in_terminal(env, "shell", "--env", env.container, send=b"echo in=$ENVCTL_ENV at=$(pwd); exit\r")
    assert f"in={env.container} at=/work".encode() in output


def test_logs_follow_of_an_ended_run_prints_it_and_returns(make_env, tarballs):
    env = make_env("mlu", cards=2)
    up(env, tarballs)
    env.run("exec", "ok", "--env", env.container)
    # The run has ended: -f prints its log to the end and returns (it follows only a run still
    # running, until that run ends; tests/integration/test_detach_follow.py).
    follower = env.popen("logs", env.container, "-f")
    try:
        out, err = follower.communicate(timeout=120)
        assert follower.returncode == 0, err
        assert out == "hello\n", out + err
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
