"""Credentials for a pulled image are Docker's, on both image stores, against a real registry
on loopback that asks for a user and password (docker-registry's htpasswd auth):

- none kept: `plan` says the size is unknown and why, `up` fails with the engine's reason and
  nothing tagged, no traceback;
- an `auths` entry of config.json (`$DOCKER_CONFIG`, as `docker login` writes it);
- a credential helper named by `credHelpers` (a `docker-credential-NAME` program on PATH that
  answers `get` with {ServerURL, Username, Secret}, the protocol of docker-credential-helpers);
- a registry behind a token service (the Bearer challenge of Docker Hub and quay.io,
  tests/servers/registry_token.py): envctl's own look-up for the plan gets a token with the
  kept credentials, and each engine gets its own (the classic store by GET with Basic auth,
  containerd by an OAuth2 password grant).
The password never appears in what envctl prints."""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path

import pytest

from engines import CLASSIC, connect
from servers.registry import Registry, push_busybox, reachable_from_engine

pytestmark = pytest.mark.both_engines

USER, SECRET = "lab", "s3cret-registry-pass"
MANIFEST = "device: {{kind: cpu}}\nimage:\n  ref: {ref}\n  pull: true\nentrypoints:\n  hello: {{run: cat /etc/marker}}\n"


@pytest.fixture(scope="module")
def private(tmp_path_factory):
    classic = connect(CLASSIC).client
    with Registry(tmp_path_factory.mktemp("private"), users={USER: SECRET}) as registry:
        repository = f"envctl-it/private-{uuid.uuid4().hex[:6]}"
        digest = push_busybox(classic, registry, repository, "1", {"etc/marker": b"behind a login\n"},
                              auth={"username": USER, "password": SECRET})
        yield registry, f"{registry.host}/{repository}", digest


@pytest.fixture
def reach(engine_under_test, private, engine):
    registry, name, digest = private
    reachable_from_engine(engine_under_test, registry.port)
    yield private
    for ref in (f"{name}:1", f"{name}@{digest}"):
        try:
            engine.images.remove(ref, force=True)
        except Exception:  # noqa: BLE001 (absent is fine)
            pass


def _docker_config(env, config: dict, helper: bool = False) -> dict:
    directory = env.base / f"docker-config-{uuid.uuid4().hex[:6]}"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config))
    environ = env.environ(DOCKER_CONFIG=str(directory))
    if helper:
        bin_dir = directory / "bin"
        bin_dir.mkdir()
        program = bin_dir / "docker-credential-envctltest"
        program.write_text("#!/bin/sh\nread server\n"
                           f"printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{SECRET}\"}}' \"$server\"\n")
        program.chmod(0o755)
        environ["PATH"] = f"{bin_dir}{os.pathsep}{environ['PATH']}"
    return environ


def test_without_credentials_it_is_refused_clearly(reach, make_env, engine):
    registry, name, digest = reach
    env = make_env("cpu")
    env.write(MANIFEST.format(ref=f"{name}:1@{digest}"))
    environ = _docker_config(env, {})
    plan = env.run("plan", str(env.manifest), env=environ)
    assert plan.returncode == 0, plan.stderr
    assert f"size unknown: {registry.host} wants credentials and Docker keeps none for it" in plan.stdout, plan.stdout
    up = env.run("up", str(env.manifest), env=environ)
    assert up.returncode == 5 and "Traceback" not in up.stderr, up.stderr
    assert f"pulling {name}@{digest} failed" in up.stderr and "no basic auth credentials" in up.stderr, up.stderr
    with pytest.raises(Exception):
        engine.api.inspect_image(f"{name}:1")


def test_a_mirror_that_wants_a_login_is_the_one_named(reach, make_env, engine):
    """The private registry as the mirror of a registry that cannot be reached from here (its
    name sorts before the mirror's): plan says the mirror wants credentials before the origin is
    asked, and up's hint asks to log in to the mirror, naming the config.json Docker reads
    ($DOCKER_CONFIG); with the login kept there, the pull goes through the mirror."""
    registry, name, digest = reach
    repository = name.split("/", 1)[1]
    origin = "0.envctl-origin.invalid"  # RFC 2606: never resolves
    env = make_env("cpu")
    env.write(MANIFEST.format(ref=f"{origin}/{repository}:1@{digest}"))
    config = env.base / "mirrors.yaml"
    config.write_text(f"mirrors:\n  registries: {{{origin}: '{registry.host}'}}\n")
    environ = {**_docker_config(env, {}), "ENVCTL_CONFIG": str(config)}
    plan = env.run("plan", str(env.manifest), env=environ)
    assert plan.returncode == 0, plan.stderr
    assert f"(mirror {registry.host}: {registry.host} wants credentials and Docker keeps none for it; asking {origin}" \
        in plan.stdout, plan.stdout
    up = env.run("up", str(env.manifest), env=environ)
    assert up.returncode == 5 and "Traceback" not in up.stderr, up.stderr
    assert f"hint:  `docker login {registry.host}` on this machine" in up.stderr, up.stderr
    assert f"{environ['DOCKER_CONFIG']}/config.json" in up.stderr, up.stderr
    token = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    environ = {**_docker_config(env, {"auths": {registry.host: {"auth": token}}}), "ENVCTL_CONFIG": str(config)}
    up = env.run("up", str(env.manifest), env=environ)
    assert up.returncode == 0, up.stderr
    assert f"through mirror {registry.host}" in up.stdout + up.stderr
    assert env.inside("cat /etc/marker") == (0, "behind a login\n")
    for ref in (f"{origin}/{repository}:1",):
        engine.images.remove(ref, force=True)


@pytest.mark.parametrize("broken", ["credsStore without its program", "credHelpers without its program",
                                    "config.json not JSON"])
def test_credentials_docker_cannot_read_are_said_as_such(reach, make_env, engine, broken):
    """docker-py raised a credential helper's failure out of the pull (said as a value the engine
    refused, with a hint to fix the manifest) and passes over a config.json it cannot parse (said
    as no credentials kept): each is said as what it is, with the file to fix, at plan, lock and
    up, exit 5 at up, no traceback."""
    registry, name, digest = reach
    env = make_env("cpu")
    env.write(MANIFEST.format(ref=f"{name}:1@{digest}"))
    if broken == "config.json not JSON":
        environ = _docker_config(env, {})
        (Path(environ["DOCKER_CONFIG"]) / "config.json").write_text('{"auths": {"%s": {"auth": "x"}}' % registry.host)
        said = "is not valid JSON"
    else:
        key = "credsStore" if broken.startswith("credsStore") else "credHelpers"
        environ = _docker_config(env, {key: "envctl-absent" if key == "credsStore" else {registry.host: "envctl-absent"}})
        said = f"Docker's credential store for {registry.host} failed"
    config_json = f"{environ['DOCKER_CONFIG']}/config.json"
    plan = env.run("plan", str(env.manifest), env=environ)
    assert plan.returncode == 0 and said in plan.stdout, plan.stdout + plan.stderr
    up = env.run("up", str(env.manifest), env=environ)
    assert up.returncode == 5 and "Traceback" not in up.stderr, up.stderr
    assert "correct that value in the manifest" not in up.stderr and config_json in up.stderr, up.stderr
    assert (said if broken != "config.json not JSON" else "is not valid JSON") in up.stderr, up.stderr
    with pytest.raises(Exception):
        engine.api.inspect_image(f"{name}:1")


@pytest.mark.parametrize("kept", ["auths", "credHelpers"])
def test_docker_credentials_are_used(reach, make_env, engine, kept):
    registry, name, digest = reach
    env = make_env("cpu")
    env.write(MANIFEST.format(ref=f"{name}:1@{digest}"))
    if kept == "auths":
        token = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
        environ = _docker_config(env, {"auths": {registry.host: {"auth": token}}})
    else:
        environ = _docker_config(env, {"credHelpers": {registry.host: "envctltest"}}, helper=True)
    plan = env.run("plan", str(env.manifest), env=environ)
    assert plan.returncode == 0, plan.stderr
    assert "compressed layers for this platform" in plan.stdout, plan.stdout
    up = env.run("up", str(env.manifest), env=environ)
    assert up.returncode == 0, up.stderr
    assert env.inside("cat /etc/marker") == (0, "behind a login\n")
    for text in (plan.stdout, plan.stderr, up.stdout, up.stderr):
        assert SECRET not in text


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    """A registry behind a token service (Bearer challenge), as quay.io and Docker Hub are."""
    from servers.registry_token import TokenService

    classic = connect(CLASSIC).client
    directory = tmp_path_factory.mktemp("token-registry")
    with TokenService({USER: SECRET}) as tokens:
        with Registry(directory, auth=tokens.settings(directory)) as registry:
            repository = f"envctl-it/token-{uuid.uuid4().hex[:6]}"
            digest = push_busybox(classic, registry, repository, "1", {"etc/marker": b"behind a token\n"},
                                  auth={"username": USER, "password": SECRET})
            yield registry, f"{registry.host}/{repository}", digest, tokens


def test_a_token_service_is_asked_with_docker_credentials(token_registry, engine_under_test, make_env, engine):
    registry, name, digest, tokens = token_registry
    reachable_from_engine(engine_under_test, registry.port, tokens.port)
    env = make_env("cpu")
    env.write(MANIFEST.format(ref=f"{name}:1@{digest}"))
    nobody = _docker_config(env, {})
    plan = env.run("plan", str(env.manifest), env=nobody)
    assert f"size unknown: {registry.host}'s token service refused a token for repository:" in plan.stdout, plan.stdout
    token = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    environ = _docker_config(env, {"auths": {registry.host: {"auth": token}}})
    asked = len(tokens.issued)
    plan = env.run("plan", str(env.manifest), env=environ)
    assert "compressed layers for this platform" in plan.stdout, plan.stdout
    assert (USER, f"repository:{name.split('/', 1)[1]}:pull") in tokens.issued[asked:]
    try:
        up = env.run("up", str(env.manifest), env=environ)
        assert up.returncode == 0, up.stderr
        assert env.inside("cat /etc/marker") == (0, "behind a token\n")
        for text in (plan.stdout, plan.stderr, up.stdout, up.stderr):
            assert SECRET not in text
    finally:
        for ref in (f"{name}:1", f"{name}@{digest}"):
            try:
                engine.images.remove(ref, force=True)
            except Exception:  # noqa: BLE001 (absent is fine)
                pass
