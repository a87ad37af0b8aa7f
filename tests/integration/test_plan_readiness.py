"""`plan` asks the engine whether the image and the container are there, and says "ready" only
when nothing blocks `up` and nothing is left to provide: an image tarball with no source yet
is needed only while the engine lacks the image; an artifact with no source is needed always.
Without an engine the plan says it could not ask. Against the real engine under test."""

import json

from support import IMAGE

OBTAIN = "ask the lab for the image (docker save it, then set IMAGE_TARBALL)"


def write(env, extra: str = "") -> None:
    env.write(f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}, tarball: {{obtain: '{OBTAIN}'}}}}\n" + extra)


def plan(env, *args, **environ):
    done = env.run("plan", *args, str(env.manifest), env=env.environ(**environ) if environ else None)
    return done


def test_a_tarball_to_provide_while_the_engine_lacks_the_image_is_not_ready(make_env, no_image):
    env = make_env("cpu")
    write(env)
    done = plan(env)
    assert done.returncode == 5, done.stderr
    text = done.stdout
    assert "→ missing: not on the engine, and the tarball has no source yet" in text
    assert f"needs (provide these before up):\n  - image {IMAGE}: {OBTAIN}\n" in text
    assert text.rstrip().endswith("not ready: 1 thing(s) to provide (needs)")
    assert "ready: up can proceed" not in text
    assert f"→ create: no container named {env.container}" in text  # the container was looked up too
    data = json.loads(plan(env, "--json").stdout)
    assert data["ready"] is False and data["needs"] == [f"image {IMAGE}: {OBTAIN}"]
    assert data["image"]["action"] == "missing"
    dry = env.run("up", "--dry-run", str(env.manifest))
    assert dry.returncode == 5 and dry.stdout == text


def test_the_same_manifest_is_ready_once_the_engine_has_the_image(make_env, tarballs, no_image, engine):
    env = make_env("cpu")
    write(env)
    engine.images.load(tarballs.plain.read_bytes())
    done = plan(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"→ present: on the engine as {tarballs.image_id[:19]}" in done.stdout
    assert "needs (provide" not in done.stdout
    assert done.stdout.rstrip().endswith("ready: up can proceed")
    assert json.loads(plan(env, "--json").stdout)["ready"] is True


def test_an_artifact_without_a_source_is_needed_even_with_the_image(make_env, tarballs, no_image, engine):
    env = make_env("cpu")
    write(env, "artifacts:\n  weights: {obtain: 'copy them from the NAS'}\n")
    engine.images.load(tarballs.plain.read_bytes())
    done = plan(env)
    assert done.returncode == 5
    assert "needs (provide these before up):\n  - artifact weights: copy them from the NAS\n" in done.stdout
    assert done.stdout.rstrip().endswith("not ready: 1 thing(s) to provide (needs)")


def test_a_blocker_and_a_need_are_both_counted(make_env, no_image, tmp_path):
    env = make_env("cpu")
    write(env, f"container:\n  mounts: ['{tmp_path}/not-there:/data']\n")
    done = plan(env)
    assert done.returncode == 5
    assert done.stdout.rstrip().endswith("not ready: 1 blocker(s) and 1 thing(s) to provide (needs)")


def test_without_an_engine_the_plan_says_it_could_not_ask(make_env, tmp_path):
    env = make_env("cpu")
    write(env)
    gone = f"unix://{tmp_path}/no-engine.sock"
    done = plan(env, DOCKER_HOST=gone)
    assert done.returncode == 5
    assert "→ unknown: the engine could not be asked" in done.stdout
    assert f"  - image {IMAGE}: {OBTAIN} (unless the engine has the image: it could not be asked)\n" in done.stdout
    assert done.stdout.rstrip().endswith("not ready: 1 thing(s) to provide (needs); the engine could not be asked either")
    # nothing to provide: undecided, never "ready"
    env.write(f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}}}\n")
    done = plan(env, DOCKER_HOST=gone)
    assert done.returncode == 5  # undecided is not ready: up could not apply this plan
    assert done.stdout.rstrip().splitlines()[-1].startswith("undecided: the engine could not be asked")
    assert json.loads(plan(env, "--json", DOCKER_HOST=gone).stdout)["ready"] is False


def test_a_local_tarball_that_is_not_there_is_to_provide(make_env, no_image, tmp_path):
    env = make_env("cpu")
    gone = tmp_path / "not-here.tar"
    env.write(f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}, tarball: {{source: '{gone}'}}}}\n")
    done = plan(env)
    assert done.returncode == 5, done.stdout + done.stderr
    assert f"  - image {IMAGE}: the tarball {gone} does not exist on this machine\n" in done.stdout
    assert done.stdout.rstrip().endswith("not ready: 1 thing(s) to provide (needs)")
    gone.write_bytes(b"")  # there now (its bytes are up's concern): nothing left to provide
    assert "does not exist" not in plan(env).stdout


def test_a_local_artifact_that_is_not_there_is_to_provide_plain_and_file_url(make_env, tarballs, no_image, engine, tmp_path):
    env = make_env("cpu")
    engine.images.load(tarballs.plain.read_bytes())
    env.write(f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}}}\nartifacts:\n"
              f"  plain: {{source: '{tmp_path}/w.bin'}}\n  url: {{source: 'file://{tmp_path}/d.bin'}}\n")
    done = plan(env, "--json")
    assert done.returncode == 5, done.stdout + done.stderr
    needs = json.loads(done.stdout)["needs"]
    assert [n.split(":")[0] for n in needs] == ["artifact plain", "artifact url"]
    assert all("does not exist on this machine, and the cache does not hold it" in n for n in needs)
    (tmp_path / "w.bin").write_bytes(b"w")
    (tmp_path / "d.bin").write_bytes(b"d")
    again = plan(env)
    assert again.returncode == 0, again.stdout + again.stderr
