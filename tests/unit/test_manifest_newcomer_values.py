"""Values a newcomer writes the way other fields take them: ports as numbers or text in both
container.ports and an entrypoint's ports; one problem per wrong value, however many union
members pydantic tried; the schema's default container name with the variant."""

import hashlib
import json

import pytest
from typer.testing import CliRunner

from envctl.cli import app
from envctl.errors import ManifestError
from envctl.manifest.discovery import search_roots
from envctl.manifest.loader import load

HEAD = "name: m\ndescription: d\ndevice: {kind: cpu}\nimage: {ref: 'busybox:1'}\n"


def load_text(tmp_path, environ, body: str, head: str = HEAD):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(head + body)
    return load(manifest, environ=dict(environ), roots=search_roots(dict(environ)))


def problems(tmp_path, environ, body: str, head: str = HEAD) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_text(tmp_path, environ, body, head)
    return [f"{p.line}:{p.column}: {p.path}: {p.message}" for p in caught.value.problems]


# --- ports: both spellings in both places ---------------------------------------------------

@pytest.mark.parametrize("written, served", [
    ("[8000]", (8000,)), ('["8000"]', (8000,)), ('["8000/tcp"]', (8000,)), ('["53/udp", 8001]', (53, 8001)),
])
def test_entrypoint_ports_as_numbers_or_text(tmp_path, clean_env, written, served):
    loaded = load_text(tmp_path, clean_env, f"entrypoints:\n  web:\n    run: serve\n    ports: {written}\n")
    assert tuple(loaded.manifest.entrypoints["web"].ports) == served


@pytest.mark.parametrize("written, kept", [
    ("[8000]", ["8000"]), ('["8000"]', ["8000"]), ('["8080:80", 9000]', ["8080:80", "9000"]),
])
def test_container_ports_as_numbers_or_text(tmp_path, clean_env, written, kept):
    loaded = load_text(tmp_path, clean_env, f"container:\n  ports: {written}\n")
    assert list(loaded.manifest.container.ports) == kept


@pytest.mark.parametrize("written, message", [
    ('"0"', "'0': the container port must be a number from 1 to 65535"),
    ("70000", "70000 is not a port (1 to 65535)"),
    ('"70000"', "'70000': the container port must be a number from 1 to 65535"),
    ('"8000-8002"', "'8000-8002': port ranges are not taken; write one entry per port"),
    ('"8000/http"', "'8000/http': the protocol is tcp, udp or sctp"),
    ('"8080:8000"', "'8080:8000': an entrypoint names the one port it serves in the container (e.g. 8000); "
                    "a host side belongs in container.ports"),
    ("true", "expected an integer, got a boolean (true)"),
])
def test_entrypoint_ports_checked_as_container_ports_are(tmp_path, clean_env, written, message):
    found = problems(tmp_path, clean_env, f"entrypoints:\n  web:\n    run: serve\n    ports: [{written}]\n")
    assert found == [f"8:13: entrypoints.web.ports[0]: {message}"]


def test_container_ports_refuse_what_docker_refuses_in_either_spelling(tmp_path, clean_env):
    found = problems(tmp_path, clean_env, 'container:\n  ports: [70000, "70000"]\n')
    assert found == ["6:11: container.ports[0]: '70000': the container port must be a number from 1 to 65535",
                     "6:18: container.ports[1]: '70000': the container port must be a number from 1 to 65535"]


def test_schema_takes_both_spellings_of_ports():
    import jsonschema

    document = json.loads(CliRunner().invoke(app, ["schema"]).stdout)
    validator = jsonschema.Draft202012Validator(document)
    manifest = {"name": "m", "description": "d", "device": {"kind": "cpu"}, "image": {"ref": "busybox:1"},
                "container": {"ports": [8000, "8001:8001"]},
                "entrypoints": {"web": {"run": "serve", "ports": ["8000", 8001]}}}
    assert list(validator.iter_errors(manifest)) == []
    manifest["entrypoints"]["web"]["ports"] = [True]
    assert list(validator.iter_errors(manifest))


# --- one problem per wrong value ------------------------------------------------------------

@pytest.mark.parametrize("body, expected", [
    # the union int | str of a ulimit: was three problems (the key, `memlock.int`, `memlock.str`)
    ("container:\n  ulimits: {memlock: null}\n",
     ["6:22: container.ulimits.memlock: expected an integer or text, got nothing (null)"]),
    ("container:\n  ulimits: {memlock: [1, 2]}\n",
     ["6:22: container.ulimits.memlock: expected an integer or text, got a list"]),
    ("container:\n  ulimits: {nofile: null, nproc: null}\n",
     ["6:21: container.ulimits.nofile: expected an integer or text, got nothing (null)",
      "6:34: container.ulimits.nproc: expected an integer or text, got nothing (null)"]),
    # a bad name and a bad value: two problems, each said once (the name's at the key)
    ("container:\n  ulimits: {memlok: null}\n",
     ["6:13: container.ulimits.memlok: 'memlok' is not a ulimit Docker sets; one of: core, cpu, data, fsize, locks, "
      "memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack",
      "6:21: container.ulimits.memlok: expected an integer or text, got nothing (null)"]),
    # a null where a mapping or a list is expected: once each
    ("entrypoints:\n  web:\n    run: serve\n    params: null\n",
     ["8:13: entrypoints.web.params: expected a mapping (key: value), got nothing (null)"]),
    ("entrypoints:\n  web:\n    run: serve\n    params: null\n    env: null\n    ports: null\n",
     ["8:13: entrypoints.web.params: expected a mapping (key: value), got nothing (null)",
      "9:10: entrypoints.web.env: expected a mapping (key: value), got nothing (null)",
      "10:12: entrypoints.web.ports: expected a list, got nothing (null)"]),
    ("container:\n  env: null\n  mounts: null\n  ulimits: null\n",
     ["6:8: container.env: expected a mapping (key: value), got nothing (null)",
      "7:11: container.mounts: expected a list, got nothing (null)",
      "8:12: container.ulimits: expected a mapping (key: value), got nothing (null)"]),
    ("setup: null\nartifacts: null\nentrypoints: null\n",
     ["5:8: setup: expected a list, got nothing (null)",
      "6:12: artifacts: expected a mapping (key: value), got nothing (null)",
      "7:14: entrypoints: expected a mapping (key: value), got nothing (null)"]),
    ("vars: null\nvariants: null\nnotes: null\n",
     ["5:7: vars: expected a mapping (key: value), got nothing (null)",
      "6:11: variants: expected a mapping (key: value), got nothing (null)",
      "7:8: notes: expected a list, got nothing (null)"]),
    # refused by the profile merge and by the schema: said once
    ("extends: [null]\n", ["5:10: extends: expected a profile name or a list of profile names"]),
    ("extends: {a: 1}\n", ["5:10: extends: expected a profile name or a list of profile names"]),
])
def test_one_problem_per_wrong_value(tmp_path, clean_env, body, expected):
    assert problems(tmp_path, clean_env, body) == expected


def test_a_wrong_value_in_every_variant_is_said_once(tmp_path, clean_env):
    """validate checks every variant; the same problem in each is one problem."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text(HEAD + "default_variant: a\nvariants: {a: {}, b: {}, c: {}}\n"
                        "entrypoints:\n  web:\n    run: serve\n    params: null\n")
    result = CliRunner().invoke(app, ["validate", str(manifest)])
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert lines == [f"error: {manifest}:10:13: entrypoints.web.params: expected a mapping (key: value), got nothing (null)"]


# --- the schema's default container name ----------------------------------------------------

def test_schema_default_container_name_names_the_variant(tmp_path, clean_env):
    document = json.loads(CliRunner().invoke(app, ["schema"]).stdout)
    described = document["$defs"]["Container"]["properties"]["name"]["description"]
    assert "envctl-<name>[-<variant>]" in described
    # ... as the loader names it
    assert load_text(tmp_path, clean_env, "").manifest.container_name == "envctl-m"
    load_text(tmp_path, clean_env, "default_variant: small\nvariants: {small: {}, big: {}}\n")
    manifest = tmp_path / "m.yaml"
    assert load(manifest, environ=dict(clean_env),
                roots=search_roots(dict(clean_env))).manifest.container_name == "envctl-m-small"
    assert load(f"{manifest}:big", environ=dict(clean_env),
                roots=search_roots(dict(clean_env))).manifest.container_name == "envctl-m-big"
    # a combination, as the description says: its parts joined by '-' and a digest of "a+b"
    assert "combined variants a+b as -a-b-<first 6 hex digits of sha256 of \"a+b\">" in described
    combined = load(f"{manifest}:big+small", environ=dict(clean_env), roots=search_roots(dict(clean_env))).manifest
    assert combined.container_name == "envctl-m-big-small-" + hashlib.sha256(b"big+small").hexdigest()[:6]


# --- ports under host networking (Docker discards them: "Published ports are discarded when
# using host network mode"; docker-py refuses them: "incompatible with port_bindings") -------

HOST_NET = "ports cannot be published with network 'host': the container uses the host's ports; remove ports or the network mode"


@pytest.mark.parametrize("layers, where, set_by", [
    ({"m.yaml": "container: {network: host, ports: [8000]}\n"}, "5:35", ""),
    # the network from a profile, the ports from the manifest (the newcomer's case: ascend910):
    # the profile's line is named, and the null that removes it
    ({"m.yaml": "extends: hostnet\ncontainer: {ports: ['8000']}\n",
      "profiles/hostnet.yaml": "description: p\ncontainer: {network: host}\n"}, "6:20",
     " (set by profile hostnet at {dir}/profiles/hostnet.yaml:2; `network: null` under the manifest's container "
     "removes it)"),
    # the ports from a variant
    ({"m.yaml": "container: {network: host}\ndefault_variant: serve\nvariants: {serve: {container: {ports: [8000]}}}\n"},
     "7:39", ""),
    # the network from a variant: named, no null (nothing is above a variant)
    ({"m.yaml": "container: {ports: [8000]}\ndefault_variant: host\nvariants: {host: {container: {network: host}}}\n"},
     "5:20", " (set by variant host at {dir}/m.yaml:7)"),
])
def test_ports_with_host_network_are_refused_wherever_each_comes_from(tmp_path, clean_env, layers, where, set_by):
    for name, text in layers.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(HEAD + text if name == "m.yaml" else text)
    with pytest.raises(ManifestError) as caught:
        load(tmp_path / "m.yaml", environ=dict(clean_env), roots=search_roots(dict(clean_env)))
    said = HOST_NET.replace("'host':", f"'host'{set_by.format(dir=tmp_path)}:")
    assert [f"{p.line}:{p.column}: {p.path}: {p.message}" for p in caught.value.problems] == [
        f"{where}: container.ports: {said}"]


def test_ports_with_a_containers_network_are_refused_and_bridge_takes_them(tmp_path, clean_env):
    found = problems(tmp_path, clean_env, "container: {network: 'container:other', ports: [8000]}\n")
    assert found == ["5:48: container.ports: ports cannot be published with network 'container:other': the container "
                     "uses that container's ports; remove ports or the network mode"]
    loaded = load_text(tmp_path, clean_env, "container: {network: bridge, ports: [8000]}\n")
    assert list(loaded.manifest.container.ports) == ["8000"]
