"""Servers that keep running, on a real engine: `envctl exec ENTRY --detach` returns once the
entrypoint's `ready:` holds (BusyBox httpd in the test image, asked through its own wget from
inside the container), `status` lists it as detached, `logs ENTRY -f` follows its log, a plan
that would recreate the container names it and `up` refuses without --force, `stop` ends it.
Readiness that fails: the process ends first, or the timeout passes (the run is stopped)."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request

import pytest

from support import IMAGE

SERVER = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container:
  env: {{GREETING: "{greeting}"}}{network}
entrypoints:
  web:
    # BusyBox httpd in the foreground, serving /www (its /health exists only when asked).
    run: mkdir -p /www && {health} echo "web serving on {port}" && {serve}
    ports: [{port}]
    ready: {ready}
  idle:
    run: echo idle started; exec sleep 600
  stubborn:
    # Ignores SIGTERM: stop must end it with SIGKILL.
    run: trap '' TERM; echo stubborn started; while true; do sleep 1; done
  chat:
    run: cat
    interactive: true
"""


def write(env, tarballs, ready="{http: /health}", health=True, port=8000, network="", greeting="hello", serve=None):
    """The manifest; `serve`: what web runs instead of httpd (its output goes to the log)."""
    health_cmd = "echo ok > /www/health &&" if health else ""
    env.write(SERVER.format(image=IMAGE, tarball=tarballs.plain, ready=ready, health=health_cmd, port=port,
                            network=f"\n  network: {network}" if network else "", greeting=greeting,
                            serve=serve or f"exec httpd -f -vv -p {port} -h /www"))


def up(env, tarballs, **manifest):
    write(env, tarballs, **manifest)
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr


def detached_runs(env) -> list[dict]:
    shown = env.run("status", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = [r for r in json.loads(shown.stdout) if r["name"] == env.container]
    assert len(rows) == 1, shown.stdout
    return [r for r in rows[0]["runs"] if r["kind"] == "entrypoint"]


def follow_until(env, line: str, *args) -> str:
    """`envctl logs ... -f` read until `line` appears (then stopped): what it printed."""
    follower = env.popen("logs", *args, "-f")
    seen = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = follower.stdout.readline()
            if not got:
                break
            seen.append(got)
            if line in got:
                return "".join(seen)
        pytest.fail(f"logs {' '.join(args)} -f never printed {line!r}: {''.join(seen)!r} {follower.stderr.read() if not got else ''}")
    finally:
        follower.kill()
        follower.wait()
    return "".join(seen)


def answers(env, port: int = 8000) -> bool:
    """GET /health answers `ok`: inside the container, and from this machine (the engine's host)
    at the container's address where it has one (the containerd-store test engine runs without a
    bridge network)."""
    code, body = env.inside(f"wget -q -O - http://127.0.0.1:{port}/health")
    if (code, body) != (0, "ok\n"):
        return False
    env.get().reload()
    for network in (env.get().attrs["NetworkSettings"].get("Networks") or {}).values():
        if network.get("IPAddress"):
            with urllib.request.urlopen(f"http://{network['IPAddress']}:{port}/health", timeout=10) as answer:
                return answer.status == 200 and answer.read() == b"ok\n"
    return True


@pytest.mark.both_engines  # the classic image store's engine (20.10) and the containerd store's (28)
def test_a_detached_server_answers_is_listed_logged_protected_and_stopped(make_env, tarballs):
    env = make_env("cpu")
    up(env, tarballs)
    started = env.run("exec", "web", "--detach", "--env", env.container)
    assert started.returncode == 0, started.stderr
    assert "ready    web" in started.stdout and "GET /health answers 2xx on port 8000" in started.stdout
    assert "http://127.0.0.1:8000 inside the container" in started.stdout, started.stdout  # no container.ports
    assert "not published (container.ports publishes it)" in started.stdout, started.stdout
    log = next(line.split()[1] for line in started.stdout.splitlines() if line.startswith("log "))
    assert log.startswith(str(env.base / "workspaces" / env.container / "logs" / "web-")), started.stdout

    # It answers on its port after envctl returned.
    assert answers(env)

    runs = detached_runs(env)
    assert [(r["name"], r["detached"], r["ports"], r["listening"], r["log"]) for r in runs] == \
        [("web", True, [8000], [8000], log)], runs
    text = env.run("status").stdout
    assert "running web (detached) since " in text and "serves :8000" in text, text
    assert "ready when GET /health answers 2xx on port 8000; now :8000 listening" in text, text

    # Its log, followed: by the entrypoint as argument, and with -e.
    assert "web serving on 8000" in follow_until(env, "web serving on 8000", "web", "--env", env.container)
    assert "web serving on 8000" in follow_until(env, "web serving on 8000", "-e", "web", env.container)
    assert "web serving on 8000" in follow_until(env, "web serving on 8000", "-e", "web", "--env", env.container)

    # A manifest edit that recreates the container: the plan names the server, up refuses.
    before = env.get().id
    write(env, tarballs, greeting="changed")
    planned = env.run("plan", str(env.manifest))
    assert planned.returncode == 5, planned.stdout + planned.stderr
    assert "would kill running work: web (detached) since" in planned.stdout + planned.stderr
    assert "serves :8000" in planned.stdout + planned.stderr
    refused = env.run("up", str(env.manifest))
    assert refused.returncode == 5, refused.stderr
    assert "web (detached)" in refused.stderr and "--force" in refused.stderr
    assert env.get().id == before
    assert answers(env)
    kept = env.run("down", env.container)
    assert kept.returncode == 5 and f"removing {env.container} would kill running work: web (detached)" in kept.stderr
    assert f"hint:  stop the detached server(s) (`envctl stop web --env {env.container}`)" in kept.stderr, kept.stderr

    stopped = env.run("stop", "web", "--env", env.container)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped  web (detached)" in stopped.stdout and "by SIGTERM" in stopped.stdout, stopped.stdout
    assert detached_runs(env) == []
    assert not answers(env)
    again = env.run("stop", "web", "--env", env.container)
    assert again.returncode == 4 and "no run of web is running" in again.stderr, again.stderr
    # The log kept what the server wrote, in the workspace on the host.
    assert "web serving on 8000" in open(log).read()

    forced = env.run("up", str(env.manifest))  # nothing runs now: recreated without --force
    assert forced.returncode == 0, forced.stderr


def test_a_run_that_ends_before_it_is_ready_fails_with_its_log(make_env, tarballs):
    env = make_env("cpu")
    up(env, tarballs, ready="{port: 8000}")
    write(env, tarballs, ready="{port: 8000}", serve='echo "no model here" && exit 3')
    failed = env.run("exec", "web", "--detach", "--env", env.container)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "ended (exit code 3) before it was ready (port 8000 answers)" in failed.stderr, failed.stderr
    assert "no model here" in failed.stderr  # the log's last lines
    assert detached_runs(env) == []


def test_a_run_not_ready_in_time_is_stopped(make_env, tarballs):
    env = make_env("cpu")
    # httpd answers, but /health is not there: 404 until the timeout.
    up(env, tarballs, ready="{http: /health, timeout: 3}", health=False)
    failed = env.run("exec", "web", "--detach", "--env", env.container)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "not ready after 3s (GET /health answers 2xx on port 8000; last: port 8000 listens; GET /health answered 404)" \
        in failed.stderr, failed.stderr
    assert "stopped by SIGTERM" in failed.stderr and "web serving on 8000" in failed.stderr
    assert detached_runs(env) == []


def test_a_port_that_never_listens_times_out(make_env, tarballs):
    env = make_env("cpu")
    up(env, tarballs, ready="{port: 8000, timeout: 2}")
    write(env, tarballs, ready="{port: 8000, timeout: 2}", serve="exec sleep 600")
    failed = env.run("exec", "web", "--detach", "--env", env.container)
    assert failed.returncode == 1, failed.stderr
    assert "not ready after 2s (port 8000 answers; last: nothing listens on it yet)" in failed.stderr, failed.stderr
    assert detached_runs(env) == []


def test_readiness_is_checked_inside_the_container_without_a_network(make_env, tarballs):
    env = make_env("cpu")
    up(env, tarballs, network="none")
    started = env.run("exec", "web", "--detach", "--env", env.container)
    assert started.returncode == 0, started.stderr
    assert "http://127.0.0.1:8000 inside the container only (network none)" in started.stdout, started.stdout
    stopped = env.run("stop", "web", "--env", env.container)
    assert stopped.returncode == 0, stopped.stderr


def test_a_server_on_the_loopback_only_is_ready_inside_and_said_unreachable_from_outside(make_env, tarballs):
    """BusyBox httpd bound to 127.0.0.1 (gradio's default address, `http.server --bind
    127.0.0.1`) answers the check from inside the container, and nothing outside: exec
    --detach says so, and that it is true (the container's address refuses); bound to every
    address, nothing is said and it answers there."""
    env = make_env("cpu")
    up(env, tarballs, serve="exec httpd -f -vv -p 127.0.0.1:8000 -h /www")
    started = env.run("exec", "web", "--detach", "--env", env.container)
    assert started.returncode == 0, started.stderr
    assert ("warning: web listens on 127.0.0.1:8000 only, inside the container: the container's address does not "
            "reach it") in started.stderr, started.stderr
    env.get().reload()
    for network in (env.get().attrs["NetworkSettings"].get("Networks") or {}).values():
        if network.get("IPAddress"):
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://{network['IPAddress']}:8000/health", timeout=10)
    assert env.run("stop", "web", "--env", env.container).returncode == 0
    write(env, tarballs)  # httpd on every address
    started = env.run("exec", "web", "--detach", "--env", env.container)
    assert started.returncode == 0 and "listens on" not in started.stderr, started.stderr
    assert answers(env)
    assert env.run("stop", "web", "--env", env.container).returncode == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_on_the_host_network_another_process_on_the_port_is_not_the_server(make_env, tarballs):
    """With `network: host` the container sees the host's sockets: a listener of another
    process on the port does not make the run ready; the run's own does."""
    env = make_env("cpu")
    port = _free_port()
    up(env, tarballs, ready=f"{{port: {port}, timeout: 3}}", network="host", port=port)
    write(env, tarballs, ready=f"{{port: {port}, timeout: 3}}", network="host", port=port, serve="exec sleep 600")
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", port))
        other.listen()
        failed = env.run("exec", "web", "--detach", "--env", env.container)
    assert failed.returncode == 1 and f"not ready after 3s (port {port} answers" in failed.stderr, failed.stderr
    write(env, tarballs, ready=f"{{port: {port}}}", network="host", port=port)
    started = env.run("exec", "web", "--detach", "--env", env.container)
    assert started.returncode == 0, started.stderr
    assert f"port {port} of this machine (host network)" in started.stdout, started.stdout
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as answer:
        assert answer.status == 200
    assert env.run("stop", "web", "--env", env.container).returncode == 0


def test_without_readiness_it_returns_once_started_and_stop_kills_what_ignores_sigterm(make_env, tarballs):
    env = make_env("cpu")
    up(env, tarballs)
    idle = env.run("exec", "idle", "--detach", "--env", env.container)
    assert idle.returncode == 0, idle.stderr
    assert "started  idle" in idle.stdout and "declares no readiness" in idle.stdout, idle.stdout
    stubborn = env.run("exec", "stubborn", "--detach", "--env", env.container)
    assert stubborn.returncode == 0, stubborn.stderr
    assert sorted(r["name"] for r in detached_runs(env)) == ["idle", "stubborn"]
    twice = env.run("exec", "idle", "--detach", "--env", env.container)
    assert twice.returncode == 5 and "idle already runs" in twice.stderr and "envctl stop idle" in twice.stderr
    stopped = env.run("stop", "stubborn", "--timeout", "1", "--env", env.container)
    assert stopped.returncode == 0, stopped.stderr
    assert "still running 1s after SIGTERM: killed (SIGKILL)" in stopped.stdout, stopped.stdout
    assert [r["name"] for r in detached_runs(env)] == ["idle"]
    code, processes = env.inside("ps -o pid,args")
    assert "while true" not in processes and "trap" not in processes, processes
    # --timeout 0: SIGKILL at once, said as such (no grace was waited for).
    assert env.run("exec", "stubborn", "--detach", "--env", env.container).returncode == 0
    stopped = env.run("stop", "stubborn", "--timeout", "0", "--env", env.container)
    assert stopped.returncode == 0 and "killed (SIGKILL) right after SIGTERM (--timeout 0)" in stopped.stdout, stopped.stdout
    assert [r["name"] for r in detached_runs(env)] == ["idle"]
    assert env.run("stop", "idle", "--env", env.container).returncode == 0
    assert detached_runs(env) == []


def test_detach_is_refused_for_interactive_entrypoints_and_across_nodes(make_env, tarballs):
    env = make_env("cpu")
    up(env, tarballs)
    chat = env.run("exec", "chat", "--detach", "--env", env.container)
    assert chat.returncode == 2 and "chat is interactive" in chat.stderr, chat.stderr
    nodes = env.run("exec", "web", "--detach", "--nodes", "a,b", "--env", env.container)
    assert nodes.returncode == 2 and "--detach" in nodes.stderr, nodes.stderr
    assert detached_runs(env) == []


def test_stop_ends_a_run_started_in_another_terminal(make_env, tarballs):
    env = make_env("cpu")
    up(env, tarballs)
    attached = env.popen("exec", "idle", "--env", env.container)
    try:
        assert attached.stdout.readline() == "idle started\n"
        assert [(r["name"], r["detached"]) for r in detached_runs(env)] == [("idle", False)]
        stopped = env.run("stop", "idle", "--env", env.container)
        assert stopped.returncode == 0 and "stopped  idle since" in stopped.stdout, stopped.stdout + stopped.stderr
        assert attached.wait(timeout=60) == 128 + signal.SIGTERM  # the run's code, as exec passes it on
    finally:
        attached.kill()
        attached.wait()
    assert detached_runs(env) == []


def test_interrupting_the_wait_leaves_the_server_running_and_says_so(make_env, tarballs):
    env = make_env("cpu")
    write(env, tarballs, ready="{port: 8000, timeout: 300}", serve="exec sleep 600")
    assert env.run("up", str(env.manifest)).returncode == 0
    waiting = env.popen("exec", "web", "--detach", "--env", env.container)
    try:
        assert waiting.stderr.readline().startswith("waiting  for web: port 8000 answers")
        waiting.send_signal(signal.SIGINT)
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
        waiting.wait()
    assert waiting.returncode == 130, err
    assert "interrupted while waiting: web keeps running" in err and "envctl stop web --env" in err, err
    assert [(r["name"], r["detached"], r["listening"]) for r in detached_runs(env)] == [("web", True, [])]
    assert "now :8000 not listening" in env.run("status").stdout
    assert env.run("stop", "web", "--env", env.container).returncode == 0


def test_a_container_user_that_cannot_write_the_log_is_told_before_anything_starts(make_env, tarballs):
    env = make_env("cpu")
    write(env, tarballs)
    env.manifest.write_text(env.manifest.read_text().replace("container:\n", 'container:\n  user: "4321"\n', 1))
    assert env.run("up", str(env.manifest)).returncode == 0
    refused = env.run("exec", "web", "--detach", "--env", env.container)
    assert refused.returncode == 1, refused.stderr
    assert "the container's user (uid 4321) cannot write the run's log" in refused.stderr, refused.stderr
    assert "container.user" in refused.stderr
    assert detached_runs(env) == []
