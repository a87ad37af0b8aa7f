"""`status` of a detached server, on a real engine: a port the run listens on at a loopback
address only (BusyBox httpd bound to 127.0.0.1, as gradio binds by default) is said to be
listening on loopback only, not reachable from outside the container, in the text and in
`--json` (`loopback_only`); bound to every address, it is plainly listening."""

from __future__ import annotations

import json

from support import IMAGE

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
entrypoints:
  web:
    run: mkdir -p /www && echo ok > /www/health && exec httpd -f -vv -p {bind}8000 -h /www
    ports: [8000]
    ready: {{port: 8000}}
"""
LOOPBACK_SAID = ":8000 listening on loopback only (not reachable from outside the container)"


def serve(env, tarballs, bind: str):
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain, bind=bind))
    assert env.run("up", str(env.manifest)).returncode == 0
    started = env.run("exec", "web", "--detach", "--env", env.container)
    assert started.returncode == 0, started.stderr


def web_run(env) -> dict:
    shown = env.run("status", "--json")
    assert shown.returncode == 0, shown.stderr
    runs = [run for row in json.loads(shown.stdout) if row["name"] == env.container for run in row["runs"]]
    assert [run["name"] for run in runs] == ["web"], runs
    return runs[0]


def test_status_says_a_server_listens_on_loopback_only(make_env, tarballs):
    env = make_env("cpu")
    serve(env, tarballs, "127.0.0.1:")
    run = web_run(env)
    assert (run["listening"], run["loopback_only"]) == ([8000], [8000]), run
    text = env.run("status").stdout
    assert "now " + LOOPBACK_SAID in text, text
    assert env.run("stop", "web", "--env", env.container).returncode == 0

    serve(env, tarballs, "")  # every address
    run = web_run(env)
    assert (run["listening"], run["loopback_only"]) == ([8000], []), run
    text = env.run("status").stdout
    assert "now :8000 listening;" in text and "loopback only" not in text, text
    assert env.run("stop", "web", "--env", env.container).returncode == 0
