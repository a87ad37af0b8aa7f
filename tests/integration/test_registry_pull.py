"""Images pulled from a registry (`image: {ref: ..., pull: true}`) against real registries on
loopback (Debian's docker-registry 2.8, tests/servers/registry.py), on both image stores:

- pull by digest from the image's own registry; `plan` says pull, how much, and from where;
  a second `up` pulls nothing;
- through a mirror with a path prefix (mirrors.registries {"quay.io": "127.0.0.1:PORT/quay.io"}),
  where only the mirror serves the image (quay.io cannot be reached from here): the canonical
  name is tagged and run; a mirror that cannot be reached is said and the origin asked;
- a pinned digest that is not served is refused, clearly, with nothing tagged; an image.id pin
  that the pulled image does not have is refused the same way; a stale mirror (its tag names
  another image) is passed over for the pinned digest;
- a multi-platform index is pinned by its own digest and sized for the engine's platform;
- `envctl lock` records the digest the tag names, and plan and up follow the lock.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from servers.registry import Registry, copy, origin_and_mirror, reachable_from_engine

pytestmark = pytest.mark.both_engines

MANIFEST = """\
device: {{kind: cpu}}
image:
  ref: {ref}
  pull: true
{extra}entrypoints:
  hello: {{run: "cat /etc/marker"}}
"""


@pytest.fixture(scope="module")
def registries(tmp_path_factory):
    """An origin and a mirror (the same image under quay.io/ in it), each pushed once."""
    with origin_and_mirror(tmp_path_factory.mktemp("registries"), "pulled", b"from the registry\n",
                           b"another image\n") as found:
        yield found


@pytest.fixture
def reach(engine_under_test, registries):
    """The registries reachable from the engine under test."""
    reachable_from_engine(engine_under_test, registries["origin"].port, registries["mirror"].port)
    return registries


def _forget(engine, *names: str) -> None:
    import docker

    for name in names:
        try:
            engine.images.remove(name, force=True)
        except docker.errors.ImageNotFound:
            pass


def _image_names(engine, registries) -> list[str]:
    r = registries
    return [f"{r['origin'].host}/{r['repository']}:1", f"{r['origin'].host}/{r['repository']}@{r['digest']}",
            f"quay.io/{r['repository']}:1", f"{r['mirror'].host}/quay.io/{r['repository']}@{r['digest']}"]


@pytest.fixture
def clean(engine, reach):
    _forget(engine, *_image_names(engine, reach))
    yield reach
    _forget(engine, *_image_names(engine, reach))


def _config(env, registries: dict | None) -> dict:
    path = env.base / f"config-{env.name}.yaml"
    path.write_text(yaml.safe_dump({"mirrors": {"registries": registries}} if registries else {}))
    return env.environ(ENVCTL_CONFIG=str(path))


def test_pull_by_digest_then_nothing(clean, make_env, engine):
    r = clean
    env = make_env("cpu")
    ref = f"{r['origin'].host}/{r['repository']}:1@{r['digest']}"
    env.write(MANIFEST.format(ref=ref, extra=""))
    environ = _config(env, None)
    plan = env.run("plan", str(env.manifest), env=environ)
    assert plan.returncode == 0, plan.stderr
    assert re.search(r"→ pull: not on the engine; pulled " + re.escape(f"{r['origin'].host}/{r['repository']}@{r['digest']}"),
                     plan.stdout), plan.stdout
    assert f"pinned {r['digest']}" in plan.stdout
    assert re.search(r"download \d+(\.\d)? (B|KiB|MiB) \(compressed layers for this platform\)", plan.stdout), plan.stdout
    up = env.run("up", str(env.manifest), env=environ)
    assert up.returncode == 0, up.stderr + up.stdout
    assert "pulled" in up.stdout + up.stderr
    assert env.inside("cat /etc/marker") == (0, "from the registry\n")
    attrs = engine.api.inspect_image(f"{r['origin'].host}/{r['repository']}:1")
    assert attrs["Id"] == r["digest"] or f"{r['origin'].host}/{r['repository']}@{r['digest']}" in attrs["RepoDigests"]
    again = env.run("plan", str(env.manifest), env=environ)
    assert "→ present" in again.stdout, again.stdout
    second = env.run("up", str(env.manifest), env=environ)
    assert second.returncode == 0, second.stderr
    assert "pulling" not in second.stdout + second.stderr


def test_through_a_mirror_with_a_path_prefix(clean, make_env, engine):
    """quay.io is not reachable here: only the mirror can serve the image."""
    r = clean
    env = make_env("cpu")
    ref = f"quay.io/{r['repository']}:1@{r['digest']}"
    env.write(MANIFEST.format(ref=ref, extra=""))
    environ = _config(env, {"quay.io": f"{r['mirror'].host}/quay.io"})
    plan = env.run("plan", str(env.manifest), env=environ)
    assert plan.returncode == 0, plan.stderr
    assert f"pulled {r['mirror'].host}/quay.io/{r['repository']}@{r['digest']}" in plan.stdout, plan.stdout
    assert f"mirror {r['mirror'].host}/quay.io (set in " in plan.stdout
    assert "compressed layers for this platform" in plan.stdout
    image = json.loads(env.run("plan", str(env.manifest), "--json", env=environ).stdout)["image"]
    # as an artifact's: the mirror, and apart from it where it was set (no text to take apart)
    assert (image["mirror"], image["mirror_from"]) == (f"{r['mirror'].host}/quay.io", f"{env.base / f'config-{env.name}.yaml'}:3")  # yaml.safe_dump: mirrors:, registries:, the entry
    up = env.run("up", str(env.manifest), env=environ)
    assert up.returncode == 0, up.stderr + up.stdout
    assert f"through mirror {r['mirror'].host}" in up.stdout + up.stderr
    attrs = engine.api.inspect_image(f"quay.io/{r['repository']}:1")
    assert attrs["Id"] == r["digest"] or any(d.endswith("@" + r["digest"]) for d in attrs["RepoDigests"])
    assert env.get().attrs["Config"]["Image"] == f"quay.io/{r['repository']}:1"
    assert env.inside("cat /etc/marker") == (0, "from the registry\n")


def test_unreachable_mirror_is_said_and_the_origin_used(clean, make_env, engine):
    r = clean
    env = make_env("cpu")
    ref = f"{r['origin'].host}/{r['repository']}:1@{r['digest']}"
    env.write(MANIFEST.format(ref=ref, extra=""))
    dead = f"127.0.0.1:{_closed_port()}"
    environ = _config(env, {r["origin"].host: f"{dead}/mirror"})
    plan = env.run("plan", str(env.manifest), env=environ)  # says, as up will, that the mirror did not answer
    assert plan.returncode == 0, plan.stderr
    assert re.search(rf"→ pull: .*\(mirror {re.escape(dead)}: .*; asking {re.escape(r['origin'].host)}\)", plan.stdout), plan.stdout
    assert "compressed layers for this platform" in plan.stdout, plan.stdout
    up = env.run("up", str(env.manifest), env=environ)
    assert up.returncode == 0, up.stderr + up.stdout
    said = up.stdout + up.stderr
    assert f"mirror {dead} could not serve it" in said and f"trying {r['origin'].host}" in said, said
    assert env.inside("cat /etc/marker") == (0, "from the registry\n")


def _closed_port() -> int:
    from servers.registry import free_port

    return free_port()


def test_a_digest_not_served_is_refused_and_nothing_tagged(clean, make_env, engine):
    r = clean
    env = make_env("cpu")
    wrong = "sha256:" + "0" * 64
    ref = f"quay.io/{r['repository']}:1@{wrong}"
    env.write(MANIFEST.format(ref=ref, extra=""))
    environ = _config(env, {"quay.io": f"{r['mirror'].host}/quay.io"})
    plan = env.run("plan", str(env.manifest), env=environ)
    assert "size unknown" in plan.stdout, plan.stdout
    up = env.run("up", str(env.manifest), env=environ)
    assert up.returncode == 5, up.stdout + up.stderr
    assert wrong in up.stderr and "Traceback" not in up.stderr, up.stderr
    assert "hint:" in up.stderr and "image.ref" in up.stderr
    for name in (f"quay.io/{r['repository']}:1", f"quay.io/{r['repository']}@{wrong}"):
        with pytest.raises(Exception):
            engine.api.inspect_image(name)


def test_an_image_id_pin_the_pulled_image_lacks_is_refused(clean, make_env, engine):
    r = clean
    env = make_env("cpu")
    ref = f"{r['origin'].host}/{r['repository']}:1@{r['digest']}"
    env.write(MANIFEST.format(ref=ref, extra=f"  id: sha256:{'1' * 64}\n"))
    up = env.run("up", str(env.manifest), env=_config(env, None))
    assert up.returncode == 5, up.stdout + up.stderr
    assert "the manifest pins image.id sha256:1111" in up.stderr and "nothing was tagged" in up.stderr, up.stderr
    with pytest.raises(Exception):
        engine.api.inspect_image(f"{r['origin'].host}/{r['repository']}:1")


def test_lock_records_the_digest_and_plan_and_up_follow_it(clean, make_env, engine):
    r = clean
    env = make_env("cpu")
    ref = f"{r['origin'].host}/{r['repository']}:1"
    env.write(MANIFEST.format(ref=ref, extra=""))
    environ = _config(env, None)
    unpinned = env.run("plan", str(env.manifest), env=environ)
    assert "digest not pinned yet (envctl lock)" in unpinned.stdout, unpinned.stdout
    locked = env.run("lock", str(env.manifest), env=environ)
    assert locked.returncode == 0, locked.stderr
    lock = yaml.safe_load((env.manifest.parent / "manifest.lock").read_text())
    assert lock["sources"][f"docker://{ref}"]["revision"] == r["digest"]
    plan = env.run("plan", str(env.manifest), env=environ)
    assert f"pinned {r['digest']}" in plan.stdout, plan.stdout
    up = env.run("up", str(env.manifest), env=environ)
    assert up.returncode == 0, up.stderr
    assert env.inside("cat /etc/marker") == (0, "from the registry\n")
    (env.manifest.parent / "manifest.lock").unlink()


def test_a_multi_platform_index_is_pinned_by_its_digest_and_sized_for_this_platform(clean, make_env, engine):
    """A manifest list naming the image for linux/amd64 and another for linux/arm64: the pin is
    the list's digest (what `docker pull` records), the size the engine's platform's layers, and
    the engine runs its own platform's image."""
    import platform

    r = clean
    origin, repository = r["origin"], r["repository"]
    ours = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
    other = "arm64" if ours == "amd64" else "amd64"
    entries = []
    for tag, arch in (("1", ours), ("2", other)):
        body, media_type = origin.manifest(repository, tag)
        entries.append({"mediaType": media_type, "size": len(body), "digest": "sha256:" + __import__("hashlib").sha256(body).hexdigest(),
                        "platform": {"os": "linux", "architecture": arch}})
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                        "manifests": entries}).encode()
    index_digest = origin.put_manifest(repository, "multi", index,
                                       "application/vnd.docker.distribution.manifest.list.v2+json")
    mine = json.loads(origin.manifest(repository, "1")[0])
    size = mine["config"]["size"] + sum(layer["size"] for layer in mine["layers"])
    env = make_env("cpu")
    ref = f"{origin.host}/{repository}:multi"
    env.write(MANIFEST.format(ref=ref, extra=""))
    environ = _config(env, None)
    locked = env.run("lock", str(env.manifest), env=environ)
    assert locked.returncode == 0, locked.stderr
    lock = yaml.safe_load((env.manifest.parent / "manifest.lock").read_text())
    assert lock["sources"][f"docker://{ref}"]["revision"] == index_digest
    plan = env.run("plan", "--json", str(env.manifest), env=environ)
    step = json.loads(plan.stdout)["image"]
    assert (step["action"], step["digest"], step["bytes"]) == ("pull", index_digest, size), step
    up = env.run("up", str(env.manifest), env=environ)
    assert up.returncode == 0, up.stderr
    assert env.inside("cat /etc/marker") == (0, "from the registry\n")
    attrs = engine.api.inspect_image(ref)
    assert attrs["Id"] == index_digest or f"{origin.host}/{repository}@{index_digest}" in attrs["RepoDigests"]
    _forget(engine, ref, f"{origin.host}/{repository}@{index_digest}")


def test_a_stale_mirror_is_passed_over_for_the_pinned_digest(clean, make_env, engine, engine_under_test, tmp_path):
    """A mirror whose tag names another image (a pull-through cache that has not refreshed):
    pulled by the pinned digest, it has no such manifest, which is said, and the image's own
    registry serves it."""
    r = clean
    with Registry(tmp_path / "stale") as stale:
        copy(r["origin"], stale, r["repository"], "2", f"origin/{r['repository']}")
        body, media_type = stale.manifest(f"origin/{r['repository']}", "2")
        stale.put_manifest(f"origin/{r['repository']}", "1", body, media_type)  # its :1 is the other image
        reachable_from_engine(engine_under_test, stale.port)
        env = make_env("cpu")
        env.write(MANIFEST.format(ref=f"{r['origin'].host}/{r['repository']}:1@{r['digest']}", extra=""))
        environ = _config(env, {r["origin"].host: f"{stale.host}/origin"})
        up = env.run("up", str(env.manifest), env=environ)
        assert up.returncode == 0, up.stderr
        said = up.stdout + up.stderr
        assert f"mirror {stale.host} could not serve it" in said and f"trying {r['origin'].host}" in said, said
        assert env.inside("cat /etc/marker") == (0, "from the registry\n")
        _forget(engine, f"{r['origin'].host}/{r['repository']}:1")
        env.get().remove(force=True)
