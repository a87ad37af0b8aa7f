"""The run-time-only environment (envctl/runtime_env.py): container.pass_env in the manifest,
where values come from (the environment, then env files), Docker's env-file format, warnings
and errors. The format against `docker run --env-file` itself: tests/integration/test_pass_env.py."""

import pytest

from envctl.errors import ManifestError
from envctl.manifest.loader import load
from envctl.runtime_env import EnvFileError, PassedVariable, for_manifest, read_env_file, resolve

HEAD = "name: passing\ndescription: t\ndevice: {kind: cpu}\nimage: {ref: busybox:1}\n"


def _manifest(tmp_path, container: str):
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + "container:\n" + container)
    return path


def test_environment_wins_then_the_last_file_then_the_manifests_file(tmp_path):
    first, second, own = tmp_path / "1.env", tmp_path / "2.env", tmp_path / "own.env"
    first.write_text("A=first\nB=first\nC=first\n")
    second.write_text("A=second\nB=second\n")
    own.write_text("A=own\nB=own\nC=own\nD=own\n")
    for path in (first, second, own):
        path.chmod(0o600)
    runtime = resolve(["A", "B", "C", "D", "E"], [first, second], {"A": "env"}, [own])
    assert dict(runtime.values) == {"A": "env", "B": "second", "C": "first", "D": "own"}
    assert runtime.passed == (PassedVariable("A", "set", "environment"), PassedVariable("B", "set", str(second)),
                              PassedVariable("C", "set", str(first)), PassedVariable("D", "set", str(own)),
                              PassedVariable("E", "not set"))
    assert [w for w in runtime.warnings if w.startswith("E is not set")]
    assert runtime.secrets == frozenset()  # A to E are no credentials' names: nothing to mask


def test_only_credential_values_are_masked():
    """A passed token is masked in output; a passed log level or endpoint is not (INFO would be
    masked all over a server's log)."""
    runtime = resolve(["HF_TOKEN", "OPENAI_API_KEY", "VLLM_LOGGING_LEVEL", "HF_ENDPOINT"], [],
                      {"HF_TOKEN": "hf_x", "OPENAI_API_KEY": "sk-1", "VLLM_LOGGING_LEVEL": "INFO",
                       "HF_ENDPOINT": "https://hf-mirror.com"})
    assert runtime.secrets == {"hf_x", "sk-1"}
    assert set(runtime.values) == {"HF_TOKEN", "OPENAI_API_KEY", "VLLM_LOGGING_LEVEL", "HF_ENDPOINT"}  # all passed


def test_values_never_in_repr_or_descriptions(tmp_path):
    runtime = resolve(["HF_TOKEN"], [], {"HF_TOKEN": "hf_secret_value"})
    assert "hf_secret_value" not in repr(runtime)
    assert runtime.passed[0].describe() == "HF_TOKEN (passed, set from the environment)"
    assert PassedVariable("HF_TOKEN", "not set").describe() == "HF_TOKEN (passed, not set)"


def test_empty_in_the_environment_is_said(tmp_path):
    env_file = tmp_path / "s.env"
    env_file.write_text("HF_TOKEN=from-file\n")
    env_file.chmod(0o600)
    runtime = resolve(["HF_TOKEN"], [env_file], {"HF_TOKEN": ""})
    assert runtime.passed == (PassedVariable("HF_TOKEN", "empty", "environment"),)
    assert any("set but empty in the environment" in w for w in runtime.warnings)


def test_file_readable_by_others_warns_and_extra_names_are_not_passed(tmp_path):
    env_file = tmp_path / "s.env"
    env_file.write_text("HF_TOKEN=t\nOTHER=1\n")
    env_file.chmod(0o640)
    runtime = resolve(["HF_TOKEN"], [env_file], {})
    assert f"the env file {env_file} can be read by other users (mode 0640); `chmod 600 {env_file}` keeps its " \
           f"secrets yours" in runtime.warnings
    assert f"{env_file} sets OTHER, not in container.pass_env: not passed" in runtime.warnings
    assert dict(runtime.values) == {"HF_TOKEN": "t"}


@pytest.mark.parametrize("content, expected", [
    (b"# c\n\n  A=1\nB=\"q\"\nC='q'\nD=a b  \nE=x=y\nF=\nG=${H} # no comment\n",
     {"A": "1", "B": "\"q\"", "C": "'q'", "D": "a b  ", "E": "x=y", "F": "", "G": "${H} # no comment"}),
    (b"\xef\xbb\xbfA=1\r\nB=2\r\n", {"A": "1", "B": "2"}),  # a BOM, CRLF line ends
    (b"BARE\nUNSET_BARE\n", {"BARE": "from-env"}),  # NAME alone: the environment's value, if any
])
def test_docker_env_file_format(tmp_path, content, expected):
    path = tmp_path / "f.env"
    path.write_bytes(content)
    assert read_env_file(path, {"BARE": "from-env"}) == expected


@pytest.mark.parametrize("content, message", [
    (b"A=1\n=2\n", ":2: no variable name before '='"),
    (b"A=1\nMY VAR=2\n", ":2: variable name 'MY VAR' holds a space or tab"),
    (b"A=\xff\n", ":1: not UTF-8 text"),
    (b"A=1\x00\n", ":1: a NUL character"),
])
def test_bad_env_files_are_located(tmp_path, content, message):
    path = tmp_path / "bad.env"
    path.write_bytes(content)
    with pytest.raises(EnvFileError) as raised:
        read_env_file(path, {})
    assert f"{path}{message}" in raised.value.message
    assert raised.value.exit_code == 2


def test_missing_given_file_is_an_error_the_manifests_may_be_missing(tmp_path):
    with pytest.raises(EnvFileError, match="cannot read the env file"):
        resolve(["A"], [tmp_path / "absent.env"], {})
    manifest = _manifest(tmp_path, "  pass_env: [HF_TOKEN]\n  env_file: .env\n")
    runtime = for_manifest(load(manifest, environ={}), environ={})
    assert runtime.passed == (PassedVariable("HF_TOKEN", "not set"),)
    (tmp_path / ".env").write_text("HF_TOKEN=beside-the-manifest\n")
    (tmp_path / ".env").chmod(0o600)
    runtime = for_manifest(load(manifest, environ={}), environ={})
    assert dict(runtime.values) == {"HF_TOKEN": "beside-the-manifest"}
    assert runtime.passed == (PassedVariable("HF_TOKEN", "set", str(tmp_path / ".env")),)


@pytest.mark.parametrize("container, message", [
    ("  pass_env: [HF-TOKEN]\n", "m.yaml:6:14: container.pass_env[0]: 'HF-TOKEN' is not an environment variable name"),
    ("  pass_env: [1TOKEN]\n", "'1TOKEN' is not an environment variable name"),
    ("  pass_env: [HF_TOKEN, HF_TOKEN]\n", "container.pass_env: 'HF_TOKEN' is listed twice"),
    ("  env: {HF_TOKEN: x}\n  pass_env: [HF_TOKEN]\n",
     "container.pass_env: 'HF_TOKEN' is in both env (baked into the container's configuration) and pass_env"),
    ("  pass_env: HF_TOKEN\n", "container.pass_env"),
    # Names the Docker client reads: its passed value would redirect envctl's own docker exec.
    ("  pass_env: [HF_TOKEN, DOCKER_HOST]\n", "container.pass_env[1]: 'DOCKER_HOST' is read by the Docker client"),
    ("  pass_env: [DOCKER_CONTEXT]\n", "'DOCKER_CONTEXT' is read by the Docker client"),
    ("  pass_env: [DOCKER_CONFIG]\n", "'DOCKER_CONFIG' is read by the Docker client"),
    ("  pass_env: [DOCKER_TLS_VERIFY]\n", "'DOCKER_TLS_VERIFY' is read by the Docker client"),
    ("  pass_env: [HOME]\n", "'HOME' is read by the Docker client"),
    ("  env_file: ''\n", "env_file is empty"),
])
def test_manifest_problems_are_located(tmp_path, container, message):
    with pytest.raises(ManifestError) as raised:
        load(_manifest(tmp_path, container), environ={})
    shown = str(raised.value.problems[0]) if hasattr(raised.value, "problems") else raised.value.message
    assert f"{tmp_path / 'm.yaml'}:" in shown and message in shown, shown


def test_pass_env_changes_no_config_hash_and_no_step_hash(tmp_path):
    """Names and values passed are outside the container's spec and the setup steps' hashes."""
    from envctl.observe import observe
    from envctl.hosts.local import LocalHost
    from envctl.plan import build_plan

    plain = tmp_path / "plain"
    passing = tmp_path / "passing"
    for directory, extra in ((plain, ""), (passing, "  pass_env: [HF_TOKEN]\n")):
        directory.mkdir()
        (directory / "m.yaml").write_text(HEAD + "container:\n  workdir: /w\n" + extra + "setup:\n  - {name: s, run: 'true'}\n")
    plans = []
    for directory, token in ((plain, None), (passing, "one"), (passing, "two")):
        loaded = load(directory / "m.yaml", environ={})
        environ = {"HF_TOKEN": token} if token else {}
        observed = observe(LocalHost(environ={}), loaded, None, engine_problem="not asked in a unit test")
        plans.append(build_plan(loaded, observed, environ={**environ, "ENVCTL_WORKSPACE": "/w", "ENVCTL_CACHE": "/c"}))
    assert len({p.container.config_hash() for p in plans}) == 1
    assert len({p.setup[0].step_hash for p in plans}) == 1
    assert plans[1].passed == (PassedVariable("HF_TOKEN", "set", "environment"),)
    assert "one" in plans[1].secrets and "two" in plans[2].secrets


def test_a_credential_baked_in_container_env_is_said(tmp_path):
    """`HF_TOKEN: ${HF_TOKEN:-}` in container.env (the issue's manifest) bakes the token: plan says
    so and names pass_env; an empty value or a name that is no credential says nothing."""
    manifest = _manifest(tmp_path, "  env: {HF_TOKEN: \"${HF_TOKEN:-}\", LANG: C.UTF-8}\n")
    said = for_manifest(load(manifest, environ={"HF_TOKEN": "hf_x"}), environ={}).warnings
    assert said == ("container.env.HF_TOKEN looks like a credential and is baked into the container's configuration "
                    "(docker inspect shows it; a new value recreates the container and re-runs setup): move it to "
                    "container.pass_env",)
    assert for_manifest(load(manifest, environ={}), environ={}).warnings == ()
