"""The config file's pip mirror on a real engine: setup steps and entrypoints see it as
PIP_INDEX_URL at run time; it is not in the container's configuration or labels, so changing
the mirror recreates nothing and re-runs no step; the caller's PIP_INDEX_URL wins over the
file's, and a manifest's own container.env PIP_INDEX_URL wins over both."""

import json

from support import IMAGE

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
{container}setup:
  - name: record the index
    run: printf '%s' "$PIP_INDEX_URL" > /tmp/index-seen-by-step
entrypoints:
  show:
    run: echo "index=$PIP_INDEX_URL"
"""
FIRST = "http://pip-one.lab.example/simple/"
SECOND = "http://pip-two.lab.example/root/pypi/+simple/"


def _environ(env, config, **extra):
    environ = env.environ(ENVCTL_CONFIG=str(config), **extra)
    if "PIP_INDEX_URL" not in extra:
        environ.pop("PIP_INDEX_URL", None)
    return environ


def test_the_pip_mirror_reaches_steps_and_entrypoints_at_run_time_only(make_env, tarballs):
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain, container=""))
    config = env.base / "config.yaml"
    config.write_text(f"mirrors:\n  pip: {FIRST}\n")

    plan = env.run("plan", str(env.manifest), env=_environ(env, config))
    assert f"PIP_INDEX_URL (passed, set from mirrors.pip {FIRST} ({config}:2))" in plan.stdout, plan.stdout + plan.stderr
    up = env.run("up", str(env.manifest), env=_environ(env, config))
    assert up.returncode == 0, up.stdout + up.stderr
    assert env.inside("cat /tmp/index-seen-by-step") == (0, FIRST)
    container = env.get()
    assert FIRST not in json.dumps(container.attrs["Config"]) and FIRST not in json.dumps(container.labels)
    before = (container.id, container.labels["io.envctl.config-hash"])

    # Another mirror: nothing recreated, no step re-run, the entrypoint sees the new one at once.
    config.write_text(f"mirrors:\n  pip: {SECOND}\n")
    again = env.run("up", str(env.manifest), "--json", env=_environ(env, config))
    assert again.returncode == 0, again.stderr
    executed = json.loads(again.stdout)["executed"]
    assert ["container", env.container, "unchanged"] in executed
    assert [a for a in executed if a[0] == "setup"] == [["setup", "record the index", "skip"]]
    after = env.get()
    assert (after.id, after.labels["io.envctl.config-hash"]) == before
    shown = env.run("exec", "show", "--env", env.container, env=_environ(env, config))
    assert shown.stdout == f"index={SECOND}\n", shown.stderr

    # The caller's own PIP_INDEX_URL wins over the file's.
    mine = "http://devpi.desk.example/root/dev/+simple/"
    shown = env.run("exec", "show", "--env", env.container, env=_environ(env, config, PIP_INDEX_URL=mine))
    assert shown.stdout == f"index={mine}\n", shown.stderr
    # No pip mirror configured: the caller's PIP_INDEX_URL is about pip on this machine, not passed.
    config.write_text("mirrors: {}\n")
    shown = env.run("exec", "show", "--env", env.container, env=_environ(env, config, PIP_INDEX_URL=mine))
    assert shown.stdout == "index=\n", shown.stderr


def test_a_manifests_own_pip_index_wins_over_the_mirror(make_env, tarballs):
    env = make_env("cpu")
    own = "http://vendor-wheels.example/simple/"
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain, container=f"container:\n  env: {{PIP_INDEX_URL: '{own}'}}\n"))
    config = env.base / "config.yaml"
    config.write_text(f"mirrors:\n  pip: {FIRST}\n")
    plan = env.run("plan", str(env.manifest), env=_environ(env, config))
    assert "mirrors.pip" not in plan.stdout, plan.stdout
    up = env.run("up", str(env.manifest), env=_environ(env, config))
    assert up.returncode == 0, up.stdout + up.stderr
    assert env.inside("cat /tmp/index-seen-by-step") == (0, own)
    shown = env.run("exec", "show", "--env", env.container, env=_environ(env, config))
    assert shown.stdout == f"index={own}\n", shown.stderr
