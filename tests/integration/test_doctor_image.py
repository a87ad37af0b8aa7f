"""`doctor NAME` on the image, as the plan decided it with the engine under test: present (OK),
what `up` will do about it in words (INFO: load, download, build), nothing that could bring it
(FAIL, exit 5: a tarball with no source, no origin at all). Was: WARN "up will tarball"."""

import json

from support import IMAGE


def image_line(env) -> tuple[int, str, dict]:
    done = env.run("doctor", str(env.manifest))
    lines = [line for line in done.stdout.splitlines() if line.split()[1:2] == ["image"]]
    assert len(lines) == 1, done.stdout + done.stderr
    data = json.loads(env.run("doctor", "--json", str(env.manifest)).stdout)
    return done.returncode, lines[0], next(c for c in data if c["name"] == "image")


def test_a_tarball_with_no_source_and_no_image_is_a_failure(make_env, no_image):
    env = make_env("cpu")
    env.write(f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}, tarball: {{obtain: 'ask the lab for it'}}}}\n")
    code, line, check = image_line(env)
    assert code == 5
    assert line.split()[0] == "FAIL" and check["status"] == "fail"
    assert line.endswith(f"{IMAGE}: not on the engine, and the tarball has no source yet; up cannot start without it: "
                         "ask the lab for it")
    assert "up will tarball" not in line


def test_an_image_nothing_can_bring_is_a_failure_with_what_to_give(make_env, no_image):
    env = make_env("cpu")
    env.write(f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}}}\n")
    code, line, _ = image_line(env)
    assert code == 5 and line.split()[0] == "FAIL"
    assert "give image.tarball.source (a docker save tarball) or image.build in the manifest" in line


def test_a_tarball_up_will_load_is_information(make_env, tarballs, no_image):
    env = make_env("cpu")
    env.write(f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}, tarball: {{source: {tarballs.plain}}}}}\n")
    code, line, check = image_line(env)
    assert code == 0
    assert check["status"] == "info"
    assert line.split()[0] == "INFO"
    # Load it from the tarball, or, where an earlier test left the same image under another
    # name on this engine, tag it: both are what up will do, and neither is a failure.
    assert (line.endswith(f"{IMAGE} not on this host yet: up will load it from the tarball {tarballs.plain}")
            or line.endswith(f"{IMAGE} not on this host yet: up will tag the pinned image, which the engine holds "
                             "under another name")), line


def test_a_tarball_up_will_download_is_information(make_env, no_image):
    env = make_env("cpu")
    url = "http://127.0.0.1:9/images/busybox.tar"  # never asked: doctor does not download
    env.write(f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}, tarball: {{source: '{url}'}}}}\n")
    code, line, _ = image_line(env)
    assert code == 0
    assert line.endswith(f"{IMAGE} not on this host yet: up will download the tarball {url}, then load it")


def test_a_build_is_information(make_env, engine, tmp_path):
    env = make_env("cpu")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {IMAGE}\n")
    ref = f"envctl-it/doctor-build-{env.name}:1"
    env.write(f"device: {{kind: cpu}}\nimage: {{ref: '{ref}', build: {context}}}\n")
    code, line, _ = image_line(env)
    assert code == 0
    assert line.endswith(f"{ref} not on this host yet: up will build it from {context}")


def test_an_image_on_the_engine_is_ok(make_env, tarballs, no_image, engine):
    env = make_env("cpu")
    env.write(f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}, tarball: {{obtain: 'ask the lab for it'}}}}\n")
    engine.images.load(tarballs.plain.read_bytes())
    code, line, check = image_line(env)
    assert code == 0 and check["status"] == "ok"
    assert line.endswith(f"{IMAGE} present (on the engine as {tarballs.image_id[:19]})")


def test_without_an_engine_the_image_is_not_guessed(make_env, tmp_path):
    env = make_env("cpu")
    env.write(f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}}}\n")
    done = env.run("doctor", str(env.manifest), env=env.environ(DOCKER_HOST=f"unix://{tmp_path}/none.sock"))
    assert done.returncode == 5  # the engine check fails
    assert any(line.startswith("WARN") and line.endswith(f"{IMAGE}: the engine could not be asked whether it holds it")
               for line in done.stdout.splitlines()), done.stdout


def test_a_tarball_or_artifact_at_a_local_path_that_is_not_there_is_a_failure(make_env, tarballs, tmp_path):
    """A local path is no download: a tarball or an artifact whose file:// or plain-path source
    does not exist (and that the cache does not hold) stops `up`, whatever the network does.
    Was: INFO "up will download the tarball /path, then load it" and nothing for the artifact.
    The ref is one no engine holds (the shared test image is left alone)."""
    env = make_env("cpu")
    ref = f"envctl-it/doctor-missing-{env.name}:1"
    gone = tmp_path / "gone"
    env.write(f"device: {{kind: cpu}}\nimage: {{ref: '{ref}', tarball: {{source: '{gone}/image.tar', "
              f"obtain: 'copy it from the NAS'}}}}\n"
              f"artifacts:\n  weights: {{source: '{gone}/weights'}}\n  data: {{source: 'file://{gone}/data.bin'}}\n"
              f"  here: {{source: '{tmp_path}'}}\n")
    code, line, check = image_line(env)
    assert code == 5 and check["status"] == "fail"
    assert line.endswith(f"{ref}: not on the engine, and the tarball {gone}/image.tar does not exist on this machine; "
                         "up cannot start without it: copy it from the NAS")
    done = env.run("doctor", str(env.manifest))
    failed = [line.split(None, 2)[2] for line in done.stdout.splitlines() if line.split()[:2] == ["FAIL", "artifacts"]]
    assert failed == [f"weights: {gone}/weights does not exist on this machine, and the cache does not hold it; "
                      "up stops at its fetch",
                      f"data: {gone}/data.bin does not exist on this machine, and the cache does not hold it; "
                      "up stops at its fetch"]
    # once there, the same manifest is information again: up will load it (or tag it, when
    # another test left the tarball's image on the shared engine)
    gone.mkdir()
    (gone / "image.tar").write_bytes(tarballs.plain.read_bytes())
    (gone / "weights").mkdir()
    (gone / "data.bin").write_bytes(b"x")
    code, line, check = image_line(env)
    assert code == 0 and check["status"] == "info", line
    assert "does not exist" not in line and " up will " in line
    assert "FAIL" not in env.run("doctor", str(env.manifest)).stdout
