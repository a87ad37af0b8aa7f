"""`envctl build`, `save` and `load`: the setup baked into an image, tagged by its inputs."""

import pytest

from support import IMAGE

pytestmark = pytest.mark.both_engines  # baked-image keys on the classic and the containerd image store

BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
setup:
  - name: make the work directory
    run: mkdir -p /work && echo made >> /work/runs
  - name: greet
    run: echo {greeting} > /work/greeting
entrypoints:
  ok:
    run: cat /work/greeting
"""


def test_build_tags_by_inputs_up_uses_it_and_save_load_carries_it(make_env, tarballs, engine, tmp_path):
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain, greeting="hello"))
    first = env.run("build", str(env.manifest))
    assert first.returncode == 0, first.stderr
    ref = first.stdout.strip()
    assert ref.startswith(f"envctl-baked/{env.name}:") and f"baked      {ref}: baked" in first.stderr
    again = env.run("build", str(env.manifest))
    assert again.stdout.strip() == ref and f"baked      {ref}: present" in again.stderr
    changed = env.write(BODY.format(image=IMAGE, tarball=tarballs.plain, greeting="bonjour"))
    other = env.run("build", str(changed))
    assert other.returncode == 0 and other.stdout.strip() != ref
    baked = other.stdout.strip()

    up = env.run("up", str(env.manifest))
    assert up.returncode == 0, up.stderr
    assert f"image      {baked}: baked (setup inside)" in up.stderr
    assert "setup      0 step(s) ran, 2 unchanged" in up.stderr
    ran = env.run("exec", "ok", "--env", env.container)
    assert ran.stdout == "bonjour\n" and "warning" not in ran.stderr, ran.stderr  # the baked image is no change
    assert env.inside("cat /work/runs")[1] == "made\n"

    saved = tmp_path / "baked.tar.gz"
    done = env.run("save", str(env.manifest), "-o", str(saved))
    assert done.returncode == 0, done.stderr
    assert env.run("down", env.container).returncode == 0
    engine.images.remove(baked, force=True)
    loaded = env.run("load", str(saved))
    assert loaded.returncode == 0, loaded.stderr
    assert f"loaded     {baked}" in loaded.stderr
    up_again = env.run("up", str(env.manifest))
    assert f"image      {baked}: baked (setup inside)" in up_again.stderr, up_again.stderr
    assert "setup      0 step(s) ran, 2 unchanged" in up_again.stderr
    engine.images.remove(ref, force=True)


def test_save_without_a_bake_says_what_to_run(make_env, tarballs):
    env = make_env("cpu")
    env.write(BODY.format(image=IMAGE, tarball=tarballs.plain, greeting="x"))
    done = env.run("save", str(env.manifest), "-o", "/tmp/never.tar")
    assert done.returncode == 4
    assert "has no baked image for its current inputs on this host" in done.stderr and "envctl build" in done.stderr


def test_load_names_every_image_by_the_engines_id_and_its_config_digest(engine, engine_under_test, tmp_path, monkeypatch):
    """`envctl load` of a `docker save a b` tarball (Debian 12's Docker 20.10 wrote it): every
    image's tags and the ID this engine gives it (what `docker inspect` shows), with the config
    digest beside it where the engine names the image otherwise (the containerd store)."""
    import subprocess
    import uuid

    import docker

    from engines import CLASSIC, connect
    from envctl import bake
    from testimages import _rootfs_tar

    monkeypatch.setenv("ENVCTL_CACHE", str(tmp_path / "cache"))
    from support import SESSION

    refs = [f"envctl-it/load-{n}:{SESSION}" for n in ("a", "b")]
    classic = connect(CLASSIC).client
    configs = {}
    for ref in refs:
        classic.api.import_image_from_data(_rootfs_tar({"etc/load": uuid.uuid4().hex.encode()}), repository=ref.split(":")[0], tag=SESSION)
        configs[ref] = classic.images.get(ref).id
    path = tmp_path / "two.tar"
    subprocess.run(["docker", "save", "-o", str(path), *refs], check=True, timeout=120,
                   env={"DOCKER_HOST": CLASSIC.docker_host, "PATH": "/usr/local/bin:/usr/bin:/bin"})
    for ref in refs:
        classic.images.remove(ref, force=True)
    said = []
    try:
        reported = bake.load(engine, path, said.append)
        assert len(said) == 2, said
        # In the tarball's order, which is not always the order `docker save` was given.
        assert sorted(tags for tags, _, _ in reported) == [(ref,) for ref in refs]
        for line, (tags, engine_id, config) in zip(said, reported):
            ref = tags[0]
            assert config == configs[ref]
            assert engine_id == engine.api.inspect_image(ref)["Id"]
            if engine_under_test.store == "classic":
                assert line == f"loaded     {ref} ({config})"
            else:
                assert engine_id != config and line == f"loaded     {ref} ({engine_id}, config digest {config})"
    finally:
        for ref in refs:
            try:
                engine.images.remove(ref, force=True)
            except docker.errors.ImageNotFound:
                pass
