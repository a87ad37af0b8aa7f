"""`exec --host` of a non-interactive entrypoint runs through the host's own docker CLI, in one
command over the master connection (`ssh HOST docker exec ...`, as a user would type it),
instead of this machine's docker CLI through the forwarded socket (a round trip per engine
request); the environment is chosen from one listing. What a run does stays: its exit code and
output, the log in the host's workspace, passed values masked and on no command line, the run
listed by `status` while it runs, Ctrl-C and SIGTERM reaching the entrypoint. A host without a
docker CLI gets the forwarded socket. Round trips counted with ENVCTL_SSH_TRACE."""

from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from pathlib import Path

import pytest

from support import IMAGE
from test_remote_nodes import tarball  # noqa: F401 (a fixture)

VALUE = "a b\n'c\" $HOME \\ é"  # spaces, a newline, quotes, a dollar, a backslash, UTF-8
BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container:
  pass_env: [HF_TOKEN]
entrypoints:
  greet:
    run: printf 'out %s|\\n' "$GREETING"; echo "token=$HF_TOKEN"; exit 3
    env: {{GREETING: {value}}}
  long:
    run: trap 'echo got INT > /tmp/signal; exit 130' INT; trap 'echo got TERM > /tmp/signal; exit 143' TERM; echo started; while true; do sleep 0.1; done
"""


SSH_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]  # sshd's default PATH


@pytest.fixture
def traced(world, tmp_path):
    """(environ, lines()): envctl's environment with a trace of its ssh commands and docker-py
    requests; lines() gives those made since the last call."""
    trace = tmp_path / "ssh-trace"
    token = "hf_" + uuid.uuid4().hex

    def lines() -> list[str]:
        found = trace.read_text().splitlines() if trace.exists() else []
        trace.write_text("")
        return [line for line in found if not line.startswith("mux ")]

    return world.environ(ENVCTL_SSH_TRACE=str(trace), HF_TOKEN=token), lines, token


def _up(world, tarball):  # noqa: F811
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball, value=json.dumps(VALUE)))
    up = world.run("up", str(manifest), "--host", "lab1")
    assert up.returncode == 0, up.stderr


def _logs(world) -> list:
    return sorted(world.remote("lab1", f"{world.data_dir()}/workspaces/{world.container}/logs").glob("greet-*.log"))


def _processes_holding(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _new_log(world, before: list) -> Path:
    """The one log a run wrote since `before` (_logs then): two runs in one second write two
    logs whose names differ only in their random part (execute.log_path), so the newest is not
    the last by name."""
    new = [log for log in _logs(world) if log not in before]
    assert len(new) == 1, new
    return new[0]


def _on_host(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("session ") and "command -v docker" in line]


def test_exec_on_a_host_is_one_command_through_its_own_docker_cli(world, lab, tarball, traced):  # noqa: F811
    environ, lines, token = traced
    _up(world, tarball)
    lines()
    ran = world.run("exec", "greet", "--host", "lab1", env=environ)
    assert (ran.returncode, ran.stdout) == (3, f"out {VALUE}|\ntoken=***\n"), ran.stderr
    made = lines()
    assert len(_on_host(made)) == 1, made  # the run: one command on the host
    # Through the forwarded socket only the listing, both requests at once: no docker-py, no docker CLI here.
    assert sorted(line.split(" ")[3:5] for line in made if line.startswith("api ")) == \
        [["GET", "/containers/json"], ["GET", "/images/json"]], made
    assert token not in "".join(made)
    logs = _logs(world)
    assert len(logs) == 1 and logs[0].read_text() == f"out {VALUE}|\ntoken=***\n"  # kept on the host, masked

    # The command for the run is started before the entrypoint is known: a refused exec ends it, unused.
    refused = world.run("exec", "gret", "--host", "lab1", env=environ)
    assert refused.returncode == 2 and "did you mean 'greet'" in refused.stderr
    assert len(_on_host(lines())) == 1
    assert [c for c in _processes_holding("command -v docker") if str(world.control_dir) in c] == []  # its ssh ended

    # Nothing to mask: the run's own command writes the log on the host, no session of its own for it.
    plain = {k: v for k, v in environ.items() if k != "HF_TOKEN"}
    before = _logs(world)
    unmasked = world.run("exec", "greet", "--host", "lab1", env=plain)
    assert (unmasked.returncode, unmasked.stdout) == (3, f"out {VALUE}|\ntoken=\n"), unmasked.stderr
    made = [line for line in lines() if line.startswith("session ") and "kind() {" not in line]  # not the probe round
    assert made == _on_host(made) and len(made) == 1, made
    assert _new_log(world, before).read_text().endswith(f"out {VALUE}|\ntoken=\n")

    # A host without a docker CLI (each one on the PATH hidden in lab1's own mount namespace): the forwarded socket.
    clis = sorted({os.path.realpath(os.path.join(d, "docker")) for d in os.defpath.split(":") + SSH_PATH
                   if os.path.exists(os.path.join(d, "docker"))})
    hidden = []
    try:
        for cli in clis:
            done = lab.run_in("lab1", "mount", "--bind", "/dev/null", cli)
            assert done.returncode == 0, done.stderr
            hidden.append(cli)
        assert all(os.access(cli, os.X_OK) for cli in clis), "hidden on this machine too"
        # (sh's `command -v`, as envctl's script asks: bash's names a found file it cannot run)
        assert lab.ssh("lab1", "sh", "-c", "'command -v docker'").returncode != 0
        before = _logs(world)
        again = world.run("exec", "greet", "--host", "lab1", env=environ)
        assert (again.returncode, again.stdout) == (3, f"out {VALUE}|\ntoken=***\n"), again.stderr
        assert len(_on_host(lines())) == 1  # asked, and answered that it has none: nothing ran there
    finally:
        for cli in hidden:
            lab.run_in("lab1", "umount", cli)
    assert _new_log(world, before).read_text().endswith(f"out {VALUE}|\ntoken=***\n")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_reaches_the_entrypoint_run_on_the_host(world, lab, tarball, traced, signum, code):  # noqa: F811
    environ, lines, _token = traced
    _up(world, tarball)
    lines()
    import subprocess
    import sys

    running = subprocess.Popen([sys.executable, "-m", "envctl", "exec", "long", "--host", "lab1", "--env",
                                world.container], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)
    try:
        assert running.stdout.readline() == "started\n"
        assert len(_on_host(lines())) == 1  # run by the host's docker CLI
        status = world.run("status", "--host", "lab1", "--json")
        runs = [r["runs"] for r in json.loads(status.stdout) if r["name"] == world.container][0]
        assert [(r["kind"], r["name"]) for r in runs] == [("entrypoint", "long")]
        running.send_signal(signum)
        out, err = running.communicate(timeout=60)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == code, err
    assert lab.docker("lab1", "exec", world.container, "cat", "/tmp/signal").stdout == f"got {signum.name[3:]}\n"
    assert lab.docker("lab1", "exec", world.container, "sh", "-c", "ps -o args | grep -c '[w]hile true'").stdout.strip() == "0"


CLASHING = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
entrypoints:
  names:
    run: printf '%s\\n' "d=$d" "log=$log" "k=$k" "v=$v" "a=$a" "rc=$rc" "f=$f" "LD_PRELOAD=$LD_PRELOAD"
    env: {{d: D1, f: F1, log: L1, k: K1, v: V1, a: A1, rc: R1, LD_PRELOAD: /nowhere/preload.so}}
  own:
    run: printf '%s\\n' "$envctl_v_"
    env: {{envctl_v_: mine}}
"""


def test_the_entrypoints_variables_are_not_the_host_scripts_own(world, lab, tarball, traced):  # noqa: F811
    # The host's script (execute.ON_HOST) has variables of its own (the docker CLI's path, the
    # log's) and runs mkdir and tee: an entrypoint's variables of the same names, or its
    # LD_PRELOAD, reach the docker CLI and the container only (before: `d` ran D1 in place of the
    # docker CLI, exit 127; ld.so's complaint about the preload printed by mkdir and tee).
    environ, lines, _token = traced
    world.write(CLASHING.format(image=IMAGE, tarball=tarball))
    assert world.run("up", str(world.manifest), "--host", "lab1").returncode == 0
    lines()
    ran = world.run("exec", "names", "--host", "lab1", env=environ)
    expected = "d=D1\nlog=L1\nk=K1\nv=V1\na=A1\nrc=R1\nf=F1\nLD_PRELOAD=/nowhere/preload.so\n"
    assert (ran.returncode, ran.stdout) == (0, expected), ran.stderr
    assert "ld.so" not in ran.stderr, ran.stderr
    assert len(_on_host(lines())) == 1  # on the host's own docker CLI
    logs = sorted(world.remote("lab1", f"{world.data_dir()}/workspaces/{world.container}/logs").glob("names-*.log"))
    assert len(logs) == 1 and logs[0].read_text() == expected
    # A name the script reads its variables into takes the forwarded socket, with its value.
    own = world.run("exec", "own", "--host", "lab1", env=environ)
    assert (own.returncode, own.stdout) == (0, "mine\n"), own.stderr


def test_what_the_hosts_login_shell_prints_is_not_the_runs_output(world, lab, tarball, traced):  # noqa: F811
    # The host's login shell (bash reads ~/.bashrc for an ssh command) prints before the run's
    # command starts: not the entrypoint's output, so neither on screen nor in the log, masked
    # (written from here) or not (tee on the host). Before: the junk led the output.
    environ, _lines, _token = traced
    _up(world, tarball)
    bashrc = world.remote("lab1", "/root/.bashrc")
    kept = bashrc.read_bytes() if bashrc.exists() else None
    bashrc.write_text("printf 'junk from .bashrc'\necho 'junk on stderr' >&2\n")
    try:
        assert "junk from .bashrc" in lab.ssh("lab1", "true").stdout  # the login shell does print it
        masked = world.run("exec", "greet", "--host", "lab1", env=environ)
        plain = world.run("exec", "greet", "--host", "lab1", env={k: v for k, v in environ.items() if k != "HF_TOKEN"})
    finally:
        bashrc.write_bytes(kept) if kept is not None else bashrc.unlink()
    assert (masked.returncode, masked.stdout) == (3, f"out {VALUE}|\ntoken=***\n"), masked.stderr
    assert (plain.returncode, plain.stdout) == (3, f"out {VALUE}|\ntoken=\n"), plain.stderr
    assert "junk" not in masked.stderr + plain.stderr
    assert "junk" not in "".join(log.read_text() for log in _logs(world))


READ_ONLY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
entrypoints:
  ids:
    run: echo "uid=$UID gid=$GID"
    env: {{UID: "1000", GID: "1000"}}
"""


def test_a_variable_the_hosts_sh_cannot_set_takes_the_forwarded_socket(world, lab, tarball, traced):  # noqa: F811
    # bash as the host's sh (RHEL, Fedora) holds UID read-only, and setting it ends the script:
    # the run then goes through the forwarded socket, with its value (before: exit 1, nothing ran).
    environ, lines, _token = traced
    world.write(READ_ONLY.format(image=IMAGE, tarball=tarball))
    assert world.run("up", str(world.manifest), "--host", "lab1").returncode == 0
    dash = os.path.realpath("/bin/sh")
    done = lab.run_in("lab1", "mount", "--bind", shutil.which("bash"), dash)  # lab1's own mount namespace
    assert done.returncode == 0, done.stderr
    try:
        assert "readonly" in lab.ssh("lab1", "sh", "-c", "'UID=5'").stderr  # bash, as sh there
        lines()
        ran = world.run("exec", "ids", "--host", "lab1", env=environ)
        asked = _on_host(lines())
    finally:
        lab.run_in("lab1", "umount", dash)
    assert (ran.returncode, ran.stdout) == (0, "uid=1000 gid=1000\n"), ran.stderr
    assert len(asked) == 1 and "readonly" not in ran.stderr  # asked, and answered that it cannot: nothing ran there
    logs = sorted(world.remote("lab1", f"{world.data_dir()}/workspaces/{world.container}/logs").glob("ids-*.log"))
    assert len(logs) == 1 and logs[0].read_text() == "uid=1000 gid=1000\n"


def test_a_log_the_host_cannot_append_to_leaves_the_run_without_one(world, lab, tarball, traced):  # noqa: F811
    # The workspace's logs directory read-only on the host (a read-only mount): the run goes on
    # without its log there. Before: the script's check of the log was `: >> LOG`, and a failed
    # redirection on the special built-in `:` ends a POSIX sh (dash, busybox), so nothing ran.
    environ, _lines, _token = traced
    _up(world, tarball)
    logs = f"{world.data_dir()}/workspaces/{world.container}/logs"
    world.remote("lab1", logs).mkdir(parents=True, exist_ok=True)
    plain = {k: v for k, v in environ.items() if k != "HF_TOKEN"}  # unmasked: the host's script writes the log
    for step in (["mount", "--bind", logs, logs], ["mount", "-o", "remount,bind,ro", logs]):
        done = lab.run_in("lab1", *step)
        assert done.returncode == 0, done.stderr
    try:
        assert lab.ssh("lab1", "sh", "-c", f"'true >> {logs}/probe'").returncode != 0  # it is read-only there
        ran = world.run("exec", "greet", "--host", "lab1", env=plain)
    finally:
        lab.run_in("lab1", "umount", logs)
    assert (ran.returncode, ran.stdout) == (3, f"out {VALUE}|\ntoken=\n"), ran.stderr
